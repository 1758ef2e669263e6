//! Integration tests: each file is a story told against the real server.

mod browser;
mod helpers;
mod proxy;
mod redis;
mod tools;

mod admin;
mod auth;
mod cli;
mod cluster;
mod durable;
mod failures;
mod hostile;
mod limits;
mod operations;
mod publish;
mod replay;
mod resume;
mod slow;
mod subscribe;
mod tls;
mod topics;
mod web;
