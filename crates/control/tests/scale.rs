//! Push cost at the scale (1,000 services, 5,000 endpoints, 100
//! proxies). Ignored by default: it measures, it does not check correctness.
//! `cargo test -p weft-control --release --test scale -- --ignored --nocapture`

mod common;

use std::fmt::Write as _;
use std::time::Instant;

use common::*;
use weft_xds::type_url;

#[test]
#[ignore]
fn push_at_scale() {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in 0..10 {
        let mut text = String::new();
        for i in file * 100..(file + 1) * 100 {
            let _ = write!(
                text,
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: svc{i}, namespace: ns{ns}}}\nspec:\n  hosts: [svc{i}.ns{ns}.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 8080, name: http, protocol: HTTP}}]\n  workloadSelector: {{labels: {{app: svc{i}}}}}\n---\n",
                ns = i % 10
            );
            for w in 0..5 {
                let _ = write!(
                    text,
                    "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: svc{i}-{w}, namespace: ns{ns}}}\nspec: {{address: 10.{a}.{b}.{w}, labels: {{app: svc{i}, version: v{w}}}}}\n---\n",
                    ns = i % 10,
                    a = i / 250,
                    b = i % 250
                );
            }
        }
        write(dir.path(), &format!("f{file}.yaml"), &text);
    }
    let started = Instant::now();
    let snap = snapshot_of(dir.path());
    let built = started.elapsed();
    let proxies: Vec<_> = (0..100)
        .map(|i| {
            proxy(
                &format!("10.{}.{}.0", i / 25, i % 250),
                &format!("ns{}", i % 10),
                &[],
            )
        })
        .collect();
    let started = Instant::now();
    let mut count = 0;
    for p in &proxies {
        for t in type_url::ALL {
            count += snap.resources(p, t).len();
        }
    }
    let translated = started.elapsed();
    let started = Instant::now();
    for p in &proxies {
        for t in type_url::ALL {
            count += snap.resources(p, t).len();
        }
    }
    let again = started.elapsed();
    println!(
        "services {} | load+build {built:?} (build alone {:?}) | 100 proxies, first pass {translated:?}, cached pass {again:?} | {count} resources handed out",
        snap.registry.len(),
        snap.build_time
    );
}
