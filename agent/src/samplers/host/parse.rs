//! Pure parsers from `/proc` text to node_exporter-named families.

use lookout_protocol::{Family, Labels};
use regex::Regex;

const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// `/proc/stat`: per-CPU mode seconds, guest time, and the kernel counters
/// (context switches, interrupts, forks, boot time, runnable and blocked
/// processes).
pub fn stat(text: &str, ticks_per_second: f64, out: &mut Vec<Family>) {
    let mut cpu = Family::counter(
        "node_cpu_seconds_total",
        "Seconds the CPUs spent in each mode.",
    );
    let mut guest = Family::counter(
        "node_cpu_guest_seconds_total",
        "Seconds the CPUs spent in guests (VMs) for each mode.",
    );
    let mut singles: Vec<Family> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        if let Some(n) = key.strip_prefix("cpu") {
            if n.is_empty() {
                continue; // the all-CPU line; rules sum per-CPU series
            }
            let values: Vec<f64> = fields.filter_map(|f| f.parse().ok()).collect();
            let cpu_label: &str = n;
            for (mode, v) in CPU_MODES.iter().zip(values.iter()) {
                cpu.push(
                    Labels::from_pairs([("cpu", cpu_label), ("mode", *mode)]),
                    v / ticks_per_second,
                );
            }
            for (mode, idx) in [("user", 8), ("nice", 9)] {
                if let Some(v) = values.get(idx) {
                    guest.push(
                        Labels::from_pairs([("cpu", cpu_label), ("mode", mode)]),
                        v / ticks_per_second,
                    );
                }
            }
            continue;
        }
        let first = fields.next().and_then(|f| f.parse::<f64>().ok());
        let Some(v) = first else { continue };
        let (name, help, counter) = match key {
            "intr" => (
                "node_intr_total",
                "Total number of interrupts serviced.",
                true,
            ),
            "ctxt" => (
                "node_context_switches_total",
                "Total number of context switches.",
                true,
            ),
            "btime" => (
                "node_boot_time_seconds",
                "Node boot time, in unixtime.",
                false,
            ),
            "processes" => ("node_forks_total", "Total number of forks.", true),
            "procs_running" => (
                "node_procs_running",
                "Number of processes in runnable state.",
                false,
            ),
            "procs_blocked" => (
                "node_procs_blocked",
                "Number of processes blocked waiting for I/O to complete.",
                false,
            ),
            _ => continue,
        };
        let kind = if counter {
            lookout_protocol::MetricKind::Counter
        } else {
            lookout_protocol::MetricKind::Gauge
        };
        singles.push(Family::single(name, help, kind, v));
    }
    out.push(cpu);
    out.push(guest);
    out.extend(singles);
}

/// `/proc/meminfo`: every line as `node_memory_<Key>_bytes` (kB lines) or
/// `node_memory_<Key>` (counts such as `HugePages_Total`), the way
/// node_exporter names them.
pub fn meminfo(text: &str, out: &mut Vec<Family>) {
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_ascii_whitespace();
        let Some(v) = parts.next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let key = key.replace('(', "_").replace(')', "");
        let (name, value) = match parts.next() {
            Some("kB") => (format!("node_memory_{key}_bytes"), v * 1024.0),
            _ => (format!("node_memory_{key}"), v),
        };
        out.push(Family::single(
            name,
            format!("Memory information field {key}."),
            lookout_protocol::MetricKind::Gauge,
            value,
        ));
    }
}

/// `/proc/loadavg`.
pub fn loadavg(text: &str, out: &mut Vec<Family>) {
    let mut f = text.split_ascii_whitespace();
    for (name, help) in [
        ("node_load1", "1m load average."),
        ("node_load5", "5m load average."),
        ("node_load15", "15m load average."),
    ] {
        if let Some(v) = f.next().and_then(|v| v.parse::<f64>().ok()) {
            out.push(Family::single(
                name,
                help,
                lookout_protocol::MetricKind::Gauge,
                v,
            ));
        }
    }
}

/// `/proc/diskstats`, whole disks only by default.
pub fn diskstats(text: &str, exclude: &Regex, out: &mut Vec<Family>) {
    // (index after the device name, metric, help, scale, counter)
    const FIELDS: [(usize, &str, &str, f64, bool); 17] = [
        (
            0,
            "node_disk_reads_completed_total",
            "The total number of reads completed successfully.",
            1.0,
            true,
        ),
        (
            1,
            "node_disk_reads_merged_total",
            "The total number of reads merged.",
            1.0,
            true,
        ),
        (
            2,
            "node_disk_read_bytes_total",
            "The total number of bytes read successfully.",
            512.0,
            true,
        ),
        (
            3,
            "node_disk_read_time_seconds_total",
            "The total number of seconds spent by all reads.",
            0.001,
            true,
        ),
        (
            4,
            "node_disk_writes_completed_total",
            "The total number of writes completed successfully.",
            1.0,
            true,
        ),
        (
            5,
            "node_disk_writes_merged_total",
            "The number of writes merged.",
            1.0,
            true,
        ),
        (
            6,
            "node_disk_written_bytes_total",
            "The total number of bytes written successfully.",
            512.0,
            true,
        ),
        (
            7,
            "node_disk_write_time_seconds_total",
            "This is the total number of seconds spent by all writes.",
            0.001,
            true,
        ),
        (
            8,
            "node_disk_io_now",
            "The number of I/Os currently in progress.",
            1.0,
            false,
        ),
        (
            9,
            "node_disk_io_time_seconds_total",
            "Total seconds spent doing I/Os.",
            0.001,
            true,
        ),
        (
            10,
            "node_disk_io_time_weighted_seconds_total",
            "The weighted number of seconds spent doing I/Os.",
            0.001,
            true,
        ),
        (
            11,
            "node_disk_discards_completed_total",
            "The total number of discards completed successfully.",
            1.0,
            true,
        ),
        (
            12,
            "node_disk_discards_merged_total",
            "The total number of discards merged.",
            1.0,
            true,
        ),
        (
            13,
            "node_disk_discarded_sectors_total",
            "The total number of sectors discarded successfully.",
            1.0,
            true,
        ),
        (
            14,
            "node_disk_discard_time_seconds_total",
            "This is the total number of seconds spent by all discards.",
            0.001,
            true,
        ),
        (
            15,
            "node_disk_flush_requests_total",
            "The total number of flush requests completed successfully.",
            1.0,
            true,
        ),
        (
            16,
            "node_disk_flush_requests_time_seconds_total",
            "This is the total number of seconds spent by all flush requests.",
            0.001,
            true,
        ),
    ];
    let mut fams: Vec<Family> = FIELDS
        .iter()
        .map(|(_, name, help, _, counter)| {
            if *counter {
                Family::counter(*name, *help)
            } else {
                Family::gauge(*name, *help)
            }
        })
        .collect();
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        let (Some(_major), Some(_minor), Some(dev)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if exclude.is_match(dev) {
            continue;
        }
        let values: Vec<f64> = parts.filter_map(|v| v.parse().ok()).collect();
        let labels = Labels::from_pairs([("device", dev)]);
        for (fam, (idx, _, _, scale, _)) in fams.iter_mut().zip(FIELDS.iter()) {
            if let Some(v) = values.get(*idx) {
                fam.push(labels.clone(), v * scale);
            }
        }
    }
    out.extend(fams);
}

/// `/proc/net/dev`: per-interface receive and transmit counters.
pub fn netdev(text: &str, exclude: &Regex, out: &mut Vec<Family>) -> Vec<String> {
    const RX: [&str; 8] = [
        "bytes",
        "packets",
        "errs",
        "drop",
        "fifo",
        "frame",
        "compressed",
        "multicast",
    ];
    const TX: [&str; 8] = [
        "bytes",
        "packets",
        "errs",
        "drop",
        "fifo",
        "colls",
        "carrier",
        "compressed",
    ];
    let mut rx: Vec<Family> = RX
        .iter()
        .map(|n| {
            Family::counter(
                format!("node_network_receive_{n}_total"),
                format!("Network device statistic receive_{n}."),
            )
        })
        .collect();
    let mut tx: Vec<Family> = TX
        .iter()
        .map(|n| {
            Family::counter(
                format!("node_network_transmit_{n}_total"),
                format!("Network device statistic transmit_{n}."),
            )
        })
        .collect();
    let mut devices = Vec::new();
    for (dev, values) in crate::procfs::net_dev_rows(text) {
        if exclude.is_match(dev) {
            continue;
        }
        let labels = Labels::from_pairs([("device", dev)]);
        for (i, f) in rx.iter_mut().enumerate() {
            f.push(labels.clone(), values[i]);
        }
        for (i, f) in tx.iter_mut().enumerate() {
            f.push(labels.clone(), values[8 + i]);
        }
        devices.push(dev.to_string());
    }
    out.extend(rx);
    out.extend(tx);
    devices
}

/// One `/proc/pressure/<resource>` file: `some` is time some tasks waited,
/// `full` time all non-idle tasks stalled; totals are microseconds.
pub fn pressure(resource: &str, text: &str, out: &mut Vec<Family>) {
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        let kind = parts.next();
        let total = parts
            .find_map(|p| p.strip_prefix("total="))
            .and_then(|v| v.parse::<f64>().ok());
        let Some(total) = total else { continue };
        let (suffix, what) = match kind {
            Some("some") => ("waiting", "waiting"),
            Some("full") => ("stalled", "stalled"),
            _ => continue,
        };
        // The cpu "full" line is all zeros on older kernels; node_exporter
        // reports it as stalled time as well, and so do we.
        out.push(Family::single(
            format!("node_pressure_{resource}_{suffix}_seconds_total"),
            format!("Total time in seconds that processes have {what} due to {resource} pressure."),
            lookout_protocol::MetricKind::Counter,
            total / 1e6,
        ));
    }
}

/// A `/proc/mounts` line: (device, mount point, fstype, read-only).
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub readonly: bool,
}

pub fn mounts(text: &str) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(dev), Some(mp), Some(fstype), Some(opts)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let mountpoint = crate::procfs::unescape_octal(mp);
        let m = Mount {
            device: crate::procfs::unescape_octal(dev),
            readonly: opts.split(',').any(|o| o == "ro"),
            fstype: fstype.to_string(),
            mountpoint,
        };
        // A later mount on the same point hides the earlier one.
        match out.iter_mut().find(|x| x.mountpoint == m.mountpoint) {
            Some(existing) => *existing = m,
            None => out.push(m),
        }
    }
    out
}

/// `/proc/vmstat` fields that node_exporter exports by default.
pub fn vmstat(text: &str, out: &mut Vec<Family>) {
    crate::procfs::for_each_keyed(text, |k, v| {
        let wanted = k == "oom_kill"
            || k.starts_with("pgpg")
            || k.starts_with("pswp")
            || (k.starts_with("pg") && k.ends_with("fault"));
        if wanted {
            out.push(Family::single(
                format!("node_vmstat_{k}"),
                format!("/proc/vmstat information field {k}."),
                lookout_protocol::MetricKind::Untyped,
                v as f64,
            ));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(fams: &[Family], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        fams.iter()
            .filter(|f| f.name == name)
            .flat_map(|f| f.samples.iter())
            .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| s.value)
    }

    #[test]
    fn stat_per_cpu_modes_and_counters() {
        let text = "cpu  10 0 0 0 0 0 0 0 0 0\ncpu0 100 2 30 400 5 6 7 8 9 10\ncpu1 200 0 0 0 0 0 0 0 0 0\nintr 12345 1 2\nctxt 999\nbtime 1700000000\nprocesses 77\nprocs_running 3\nprocs_blocked 1\n";
        let mut out = Vec::new();
        stat(text, 100.0, &mut out);
        assert_eq!(
            value(
                &out,
                "node_cpu_seconds_total",
                &[("cpu", "0"), ("mode", "user")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &out,
                "node_cpu_seconds_total",
                &[("cpu", "0"), ("mode", "steal")]
            ),
            Some(0.08)
        );
        assert_eq!(
            value(
                &out,
                "node_cpu_seconds_total",
                &[("cpu", "1"), ("mode", "user")]
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &out,
                "node_cpu_guest_seconds_total",
                &[("cpu", "0"), ("mode", "nice")]
            ),
            Some(0.1)
        );
        assert_eq!(
            out.iter()
                .find(|f| f.name == "node_cpu_seconds_total")
                .unwrap()
                .samples
                .len(),
            16
        );
        assert_eq!(value(&out, "node_intr_total", &[]), Some(12345.0));
        assert_eq!(value(&out, "node_context_switches_total", &[]), Some(999.0));
        assert_eq!(value(&out, "node_boot_time_seconds", &[]), Some(1.7e9));
        assert_eq!(value(&out, "node_forks_total", &[]), Some(77.0));
        assert_eq!(value(&out, "node_procs_running", &[]), Some(3.0));
        assert_eq!(value(&out, "node_procs_blocked", &[]), Some(1.0));
    }

    #[test]
    fn meminfo_names_follow_node_exporter() {
        let mut out = Vec::new();
        meminfo(
            "MemTotal:       16 kB\nActive(anon):    2 kB\nHugePages_Total:       4\nSwapFree: 1 kB\n",
            &mut out,
        );
        assert_eq!(
            value(&out, "node_memory_MemTotal_bytes", &[]),
            Some(16384.0)
        );
        assert_eq!(
            value(&out, "node_memory_Active_anon_bytes", &[]),
            Some(2048.0)
        );
        assert_eq!(value(&out, "node_memory_HugePages_Total", &[]), Some(4.0));
        assert_eq!(value(&out, "node_memory_SwapFree_bytes", &[]), Some(1024.0));
    }

    #[test]
    fn loadavg_three_values() {
        let mut out = Vec::new();
        loadavg("0.50 1.25 2.00 1/123 4567\n", &mut out);
        assert_eq!(value(&out, "node_load1", &[]), Some(0.5));
        assert_eq!(value(&out, "node_load15", &[]), Some(2.0));
    }

    #[test]
    fn diskstats_skips_partitions_and_scales_units() {
        let text = "   8       0 sda 10 1 100 50 20 2 200 60 3 70 80 0 0 0 0 5 9\n   8       1 sda1 1 1 1 1 1 1 1 1 1 1 1\n   7       0 loop0 1 1 1 1 1 1 1 1 1 1 1\n 259 0 nvme0n1 1 0 8 1 0 0 0 0 0 1 1\n 259 1 nvme0n1p1 1 0 8 1 0 0 0 0 0 1 1\n";
        let re = Regex::new(crate::config::DEFAULT_EXCLUDE_DISKS).unwrap();
        let mut out = Vec::new();
        diskstats(text, &re, &mut out);
        assert_eq!(
            value(&out, "node_disk_read_bytes_total", &[("device", "sda")]),
            Some(51200.0)
        );
        assert_eq!(
            value(
                &out,
                "node_disk_io_time_seconds_total",
                &[("device", "sda")]
            ),
            Some(0.07)
        );
        assert_eq!(
            value(&out, "node_disk_io_now", &[("device", "sda")]),
            Some(3.0)
        );
        assert_eq!(
            value(&out, "node_disk_flush_requests_total", &[("device", "sda")]),
            Some(5.0)
        );
        assert!(
            value(
                &out,
                "node_disk_reads_completed_total",
                &[("device", "nvme0n1")]
            )
            .is_some()
        );
        for gone in ["sda1", "loop0", "nvme0n1p1"] {
            assert!(
                value(&out, "node_disk_reads_completed_total", &[("device", gone)]).is_none(),
                "{gone}"
            );
        }
        // Short lines (old kernels) produce only the fields they have.
        assert!(
            value(
                &out,
                "node_disk_discards_completed_total",
                &[("device", "nvme0n1")]
            )
            .is_none()
        );
    }

    #[test]
    fn netdev_columns_map_to_names() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\nveth1234: 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n";
        let re = Regex::new(crate::config::DEFAULT_EXCLUDE_INTERFACES).unwrap();
        let mut out = Vec::new();
        let devs = netdev(text, &re, &mut out);
        assert_eq!(devs, ["eth0"]);
        assert_eq!(
            value(
                &out,
                "node_network_receive_bytes_total",
                &[("device", "eth0")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &out,
                "node_network_receive_multicast_total",
                &[("device", "eth0")]
            ),
            Some(8.0)
        );
        assert_eq!(
            value(
                &out,
                "node_network_transmit_bytes_total",
                &[("device", "eth0")]
            ),
            Some(9.0)
        );
        assert_eq!(
            value(
                &out,
                "node_network_transmit_carrier_total",
                &[("device", "eth0")]
            ),
            Some(15.0)
        );
    }

    #[test]
    fn pressure_lines() {
        let mut out = Vec::new();
        pressure(
            "memory",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=250000\n",
            &mut out,
        );
        assert_eq!(
            value(&out, "node_pressure_memory_waiting_seconds_total", &[]),
            Some(1.5)
        );
        assert_eq!(
            value(&out, "node_pressure_memory_stalled_seconds_total", &[]),
            Some(0.25)
        );
    }

    #[test]
    fn mounts_unescape_and_overmount() {
        let m = mounts(
            "/dev/sda1 / ext4 rw,relatime 0 0\n/dev/sdb /mnt/my\\040disk xfs ro,noatime 0 0\ntmpfs /mnt/my\\040disk tmpfs rw 0 0\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].mountpoint, "/mnt/my disk");
        assert_eq!(m[1].fstype, "tmpfs");
        assert!(!m[0].readonly);
        let ro = mounts("/dev/sdb /data xfs ro,noatime 0 0\n");
        assert!(ro[0].readonly);
    }

    #[test]
    fn vmstat_selects_default_fields() {
        let mut out = Vec::new();
        vmstat(
            "nr_free_pages 1\npgpgin 2\npswpout 3\npgmajfault 4\npgfault 5\noom_kill 6\npgsteal 7\n",
            &mut out,
        );
        let names: Vec<_> = out.iter().map(|f| f.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "node_vmstat_pgpgin",
                "node_vmstat_pswpout",
                "node_vmstat_pgmajfault",
                "node_vmstat_pgfault",
                "node_vmstat_oom_kill"
            ]
        );
    }
}
