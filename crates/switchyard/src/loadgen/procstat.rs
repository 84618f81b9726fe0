//! CPU time and RSS of another process, from `/proc/PID/stat` and `/proc/PID/status`.

use anyhow::Context;

/// One reading.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProcStat {
    /// utime + stime in clock ticks.
    ticks: u64,
    ticks_per_sec: u64,
    /// Resident set size.
    pub(crate) rss_kib: u64,
}

impl ProcStat {
    pub(crate) fn read(pid: u32) -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after `)`.
        let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("cannot read /proc/{pid}/status"))?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        Ok(Self {
            ticks: utime + stime,
            ticks_per_sec: switchyard_netio::clock_ticks_per_sec(),
            rss_kib,
        })
    }

    pub(crate) fn cpu_seconds(&self) -> f64 {
        self.ticks as f64 / self.ticks_per_sec as f64
    }
}
