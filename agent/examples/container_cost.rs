//! Measures the container sampler's CPU per cycle over the containers running
//! on this host: `cargo run --release -p lookout-agent --example container_cost`.
use lookout_agent::config::{ContainersConfig, Paths};
use lookout_agent::procfs::thread_cpu_time;
use lookout_agent::samplers::containers::ContainerSampler;
use lookout_agent::samplers::inventory::Inventory;
use lookout_agent::schedule::BlockingSampler;
fn main() {
    let mut s = ContainerSampler::new(
        ContainersConfig::default(),
        Paths::default(),
        Inventory::default(),
    );
    let out = s.sample(std::time::SystemTime::now()).unwrap();
    let n = out
        .families
        .iter()
        .find(|f| f.name == "container_last_seen")
        .map(|f| f.samples.len())
        .unwrap_or(0);
    let t = thread_cpu_time();
    for _ in 0..200 {
        std::hint::black_box(s.sample(std::time::SystemTime::now()).unwrap());
    }
    let per = (thread_cpu_time() - t).as_secs_f64() / 200.0;
    println!(
        "{n} containers: {:.1} µs per cycle, {:.2} µs per container",
        per * 1e6,
        per * 1e6 / n.max(1) as f64
    );
}
