//! Docker's data space by kind (`/system/df`): images, containers, volumes
//! and build cache. The call walks every layer and can take minutes on a
//! busy host, so it is its own sampler on a slow interval with a long
//! timeout, and never holds up the Docker sampler.

use std::time::SystemTime;

use lookout_protocol::{Family, Labels};
use serde_json::Value;

use super::client::Connection;
use crate::config::DockerConfig;
use crate::schedule::{AsyncSampler, Output};

pub const NAME: &str = "docker_data_usage";

pub struct DataUsageSampler {
    conn: Connection,
}

impl DataUsageSampler {
    pub fn new(cfg: &DockerConfig) -> DataUsageSampler {
        DataUsageSampler {
            conn: Connection::new(cfg.socket_path(), cfg.data_usage_timeout),
        }
    }
}

/// Totals for one kind of object.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub bytes: f64,
    pub objects: f64,
    pub active: f64,
    pub reclaimable_bytes: f64,
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Reads either shape of the response: the per-object lists of API ≤ 1.51,
/// or the summaries of API ≥ 1.52.
pub fn parse(v: &Value) -> [(&'static str, Usage); 4] {
    let summary = |key: &str| -> Option<Usage> {
        let s = v.get(key)?;
        Some(Usage {
            bytes: num(s, "TotalSize"),
            objects: num(s, "TotalCount"),
            active: num(s, "ActiveCount"),
            reclaimable_bytes: num(s, "Reclaimable"),
        })
    };
    let images = summary("ImageUsage").unwrap_or_else(|| {
        let list = items(v, "Images");
        let unused = list.iter().filter(|i| num(i, "Containers") <= 0.0);
        Usage {
            bytes: num(v, "LayersSize"),
            objects: list.len() as f64,
            active: list.iter().filter(|i| num(i, "Containers") > 0.0).count() as f64,
            reclaimable_bytes: unused
                .map(|i| (num(i, "Size") - num(i, "SharedSize").max(0.0)).max(0.0))
                .sum(),
        }
    });
    let containers = summary("ContainerUsage").unwrap_or_else(|| {
        let list = items(v, "Containers");
        let stopped = list
            .iter()
            .filter(|c| c.get("State").and_then(Value::as_str) != Some("running"));
        Usage {
            bytes: list.iter().map(|c| num(c, "SizeRw")).sum(),
            objects: list.len() as f64,
            active: list
                .iter()
                .filter(|c| c.get("State").and_then(Value::as_str) == Some("running"))
                .count() as f64,
            reclaimable_bytes: stopped.map(|c| num(c, "SizeRw")).sum(),
        }
    });
    let volumes = summary("VolumeUsage").unwrap_or_else(|| {
        let list = items(v, "Volumes");
        let usage = |vol: &Value, k: &str| vol.get("UsageData").map(|u| num(u, k)).unwrap_or(0.0);
        Usage {
            bytes: list.iter().map(|vol| usage(vol, "Size").max(0.0)).sum(),
            objects: list.len() as f64,
            active: list
                .iter()
                .filter(|vol| usage(vol, "RefCount") > 0.0)
                .count() as f64,
            reclaimable_bytes: list
                .iter()
                .filter(|vol| usage(vol, "RefCount") <= 0.0)
                .map(|vol| usage(vol, "Size").max(0.0))
                .sum(),
        }
    });
    let build_cache = summary("BuildCacheUsage").unwrap_or_else(|| {
        let list = items(v, "BuildCache");
        let in_use = |b: &Value| b.get("InUse").and_then(Value::as_bool).unwrap_or(false);
        let shared = |b: &Value| b.get("Shared").and_then(Value::as_bool).unwrap_or(false);
        Usage {
            bytes: list
                .iter()
                .filter(|b| !shared(b))
                .map(|b| num(b, "Size"))
                .sum(),
            objects: list.len() as f64,
            active: list.iter().filter(|b| in_use(b)).count() as f64,
            reclaimable_bytes: list
                .iter()
                .filter(|b| !shared(b) && !in_use(b))
                .map(|b| num(b, "Size"))
                .sum(),
        }
    });
    [
        ("images", images),
        ("containers", containers),
        ("volumes", volumes),
        ("build_cache", build_cache),
    ]
}

pub fn families(usage: &[(&'static str, Usage); 4]) -> Vec<Family> {
    let mut bytes = Family::gauge(
        "lookout_docker_disk_usage_bytes",
        "Disk space Docker uses, by kind (from /system/df).",
    );
    let mut objects = Family::gauge(
        "lookout_docker_disk_usage_objects",
        "Objects of each kind Docker holds (from /system/df).",
    );
    let mut active = Family::gauge(
        "lookout_docker_disk_usage_active_objects",
        "Objects of each kind in use (from /system/df).",
    );
    let mut reclaimable = Family::gauge(
        "lookout_docker_disk_usage_reclaimable_bytes",
        "Disk space that pruning unused objects would free, by kind.",
    );
    for (kind, u) in usage {
        let l = Labels::from_pairs([("type", *kind)]);
        bytes.push(l.clone(), u.bytes);
        objects.push(l.clone(), u.objects);
        active.push(l.clone(), u.active);
        reclaimable.push(l, u.reclaimable_bytes);
    }
    vec![bytes, objects, active, reclaimable]
}

impl AsyncSampler for DataUsageSampler {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn sample(&mut self, _now: SystemTime) -> anyhow::Result<Output> {
        let v = match self.conn.get_json("/system/df").await {
            Ok(v) => v,
            Err(e) => {
                self.conn.reset();
                return Err(e);
            }
        };
        Ok(Output::new(families(&parse(&v))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_shape() {
        let v: Value = serde_json::json!({
            "LayersSize": 1000,
            "Images": [{"Containers": 1, "Size": 600, "SharedSize": 0}, {"Containers": 0, "Size": 400, "SharedSize": 100}],
            "Containers": [{"SizeRw": 10, "State": "running"}, {"SizeRw": 5, "State": "exited"}],
            "Volumes": [{"UsageData": {"Size": 50, "RefCount": 1}}, {"UsageData": {"Size": -1, "RefCount": 0}}, {"UsageData": {"Size": 7, "RefCount": 0}}],
            "BuildCache": [{"Size": 30, "InUse": false, "Shared": false}, {"Size": 20, "InUse": true, "Shared": true}]
        });
        let [images, containers, volumes, cache] = parse(&v);
        assert_eq!(
            images.1,
            Usage {
                bytes: 1000.0,
                objects: 2.0,
                active: 1.0,
                reclaimable_bytes: 300.0
            }
        );
        assert_eq!(
            containers.1,
            Usage {
                bytes: 15.0,
                objects: 2.0,
                active: 1.0,
                reclaimable_bytes: 5.0
            }
        );
        assert_eq!(
            volumes.1,
            Usage {
                bytes: 57.0,
                objects: 3.0,
                active: 1.0,
                reclaimable_bytes: 7.0
            }
        );
        assert_eq!(
            cache.1,
            Usage {
                bytes: 30.0,
                objects: 2.0,
                active: 1.0,
                reclaimable_bytes: 30.0
            }
        );
    }

    #[test]
    fn summary_shape() {
        let v: Value = serde_json::json!({
            "ImageUsage": {"ActiveCount": 2, "TotalCount": 5, "Reclaimable": 100, "TotalSize": 900},
            "ContainerUsage": {"ActiveCount": 1, "TotalCount": 3, "Reclaimable": 4, "TotalSize": 8},
            "VolumeUsage": {"ActiveCount": 0, "TotalCount": 0, "Reclaimable": 0, "TotalSize": 0},
            "BuildCacheUsage": {"ActiveCount": 0, "TotalCount": 1, "Reclaimable": 9, "TotalSize": 9}
        });
        let [images, _, _, cache] = parse(&v);
        assert_eq!(
            images.1,
            Usage {
                bytes: 900.0,
                objects: 5.0,
                active: 2.0,
                reclaimable_bytes: 100.0
            }
        );
        assert_eq!(cache.1.bytes, 9.0);
        assert_eq!(families(&parse(&v))[0].samples.len(), 4);
    }
}
