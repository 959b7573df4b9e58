#![no_main]
//! Every parser of /proc and cgroup text never panics, whatever the kernel
//! (or a container runtime's fake /proc) hands it.

use libfuzzer_sys::fuzz_target;
use lookout_agent::samplers::containers::cgroup::{parse_blkio_v1, parse_io_stat_v2};
use lookout_agent::samplers::host::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let any = regex::Regex::new("^$").expect("regex");
    let mut out = Vec::new();
    parse::stat(text, 100.0, &mut out);
    parse::meminfo(text, &mut out);
    parse::loadavg(text, &mut out);
    parse::diskstats(text, &any, &mut out);
    parse::netdev(text, &any, &mut out);
    parse::pressure("cpu", text, &mut out);
    parse::vmstat(text, &mut out);
    let _ = parse::mounts(text);
    let _ = parse_blkio_v1(text);
    let _ = parse_io_stat_v2(text);
    let _ = lookout_agent::procfs::unescape_octal(text);
});
