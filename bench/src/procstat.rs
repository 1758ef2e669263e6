//! Process figures from `/proc`: CPU time, resident memory and open descriptors, for
//! the server under test (`--server-pid`) and for the generator itself, so a report
//! shows the server's cost per delivery and that the generator was not the bottleneck.

use std::fs;

/// A process to sample; `None` means "this process" (`/proc/self`).
#[derive(Debug, Clone, Copy)]
pub struct Proc(Option<u32>);

impl Proc {
    pub fn server(pid: u32) -> Self {
        Proc(Some(pid))
    }

    pub fn this() -> Self {
        Proc(None)
    }

    fn path(&self, file: &str) -> String {
        match self.0 {
            Some(pid) => format!("/proc/{pid}/{file}"),
            None => format!("/proc/self/{file}"),
        }
    }

    /// User plus system CPU seconds of all the process's threads so far.
    pub fn cpu_secs(&self) -> Option<f64> {
        let stat = fs::read_to_string(self.path("stat")).ok()?;
        // The command name (field 2) may hold blanks and parentheses: fields are
        // counted from the last ')'. utime and stime are fields 14 and 15.
        let after = &stat[stat.rfind(')')? + 1..];
        let mut fields = after.split_ascii_whitespace().skip(11);
        let utime: u64 = fields.next()?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        Some((utime + stime) as f64 / clock_ticks())
    }

    /// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(self.path("status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line["VmRSS:".len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// Number of open file descriptors (entries of `/proc/<pid>/fd`).
    pub fn open_fds(&self) -> Option<u64> {
        Some(fs::read_dir(self.path("fd")).ok()?.count() as u64)
    }

    /// All three figures at one moment.
    pub fn sample(&self) -> ProcSample {
        ProcSample {
            cpu_secs: self.cpu_secs(),
            rss_kib: self.rss_kib(),
            fds: self.open_fds(),
        }
    }
}

/// One reading of a process's figures; a field is `None` when `/proc` did not say.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub cpu_secs: Option<f64>,
    pub rss_kib: Option<u64>,
    pub fds: Option<u64>,
}

impl ProcSample {
    /// Several processes' figures added up (the nodes of a cluster); a field is `None`
    /// when any process did not say.
    pub fn sum(samples: &[ProcSample]) -> ProcSample {
        ProcSample {
            cpu_secs: samples.iter().map(|s| s.cpu_secs).sum(),
            rss_kib: samples.iter().map(|s| s.rss_kib).sum(),
            fds: samples.iter().map(|s| s.fds).sum(),
        }
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard one
        // needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_figures() {
        let me = Proc::this().sample();
        assert!(me.cpu_secs.is_some_and(|c| c >= 0.0));
        assert!(me.rss_kib.is_some_and(|r| r > 0));
        assert!(me.fds.is_some_and(|f| f >= 3));
        let by_pid = Proc::server(std::process::id()).sample();
        assert!(by_pid.rss_kib.is_some());
        let two = ProcSample::sum(&[
            by_pid,
            ProcSample {
                fds: Some(1),
                ..by_pid
            },
        ]);
        assert_eq!(two.fds, by_pid.fds.map(|f| f + 1));
        assert_eq!(
            ProcSample::sum(&[by_pid, ProcSample::default()]).rss_kib,
            None
        );
    }
}
