//! Integration tests: each file is a story told against the real server.

mod helpers;

mod admin;
mod cli;
mod publish;
mod replay;
mod slow;
mod subscribe;
mod topics;
mod web;
