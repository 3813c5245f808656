//! Load-balancing behaviour through `Upstream::pick`, over many picks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use weft_xds::proto;

use super::lb::Attempts;
use super::*;
use crate::config::cluster::{EndpointSet, LoadBalancer};
use crate::config::common::HostPort;

fn cluster(lb: LoadBalancer) -> Cluster {
    let mut c = Cluster::from_proto("c", proto::Cluster::default()).expect("valid");
    c.load_balancer = lb;
    c
}

fn endpoint(i: usize, weight: u32, locality: &str) -> Endpoint {
    Endpoint {
        address: HostPort::new(&format!("10.0.0.{i}"), 80).expect("valid"),
        weight,
        labels: Default::default(),
        service_account: String::new(),
        locality: locality.into(),
        mesh_tls: false,
        stats: Arc::default(),
    }
}

fn upstream(c: Cluster, eps: Vec<Endpoint>, node: &NodeInfo) -> Upstream {
    let cluster = Arc::new(c);
    let endpoints = Some(Arc::new(EndpointSet {
        cluster: cluster.name.clone(),
        endpoints: eps,
    }));
    let state = Arc::new(ClusterState::new(&cluster));
    let plan = state.plan_for(&cluster, endpoints.as_ref(), node);
    Upstream {
        cluster,
        endpoints,
        state,
        plan,
    }
}

fn ctx(headers: &HeaderMap) -> RequestContext<'_> {
    RequestContext {
        headers,
        query: None,
        source: None,
    }
}

/// How many of `n` picks went to each address's last octet.
fn spread(u: &Upstream, n: usize, headers: &HeaderMap) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let p = u.pick(&ctx(headers), Attempts::default()).expect("picked");
        *counts
            .entry(p.endpoint.address.host.to_string())
            .or_default() += 1;
    }
    counts
}

fn share(counts: &HashMap<String, usize>, host: &str, n: usize) -> f64 {
    counts.get(host).copied().unwrap_or(0) as f64 / n as f64
}

#[test]
fn weights_shape_every_policy() {
    let h = HeaderMap::new();
    for lb in [
        LoadBalancer::RoundRobin,
        LoadBalancer::Random,
        LoadBalancer::LeastRequest,
    ] {
        let u = upstream(
            cluster(lb),
            vec![endpoint(1, 3, ""), endpoint(2, 1, "")],
            &NodeInfo::default(),
        );
        let counts = spread(&u, 4000, &h);
        let heavy = share(&counts, "10.0.0.1", 4000);
        assert!((0.70..0.80).contains(&heavy), "{lb:?}: {counts:?}");
    }
}

#[test]
fn unweighted_round_robin_is_even() {
    let u = upstream(
        cluster(LoadBalancer::RoundRobin),
        (1..=3).map(|i| endpoint(i, 1, "")).collect(),
        &NodeInfo::default(),
    );
    let counts = spread(&u, 300, &HeaderMap::new());
    assert!(counts.values().all(|c| *c == 100), "{counts:?}");
}

#[test]
fn tried_endpoints_are_avoided_while_others_exist() {
    let u = upstream(
        cluster(LoadBalancer::RoundRobin),
        vec![endpoint(1, 1, ""), endpoint(2, 1, "")],
        &NodeInfo::default(),
    );
    let first = HostPort::new("10.0.0.1", 80).expect("valid");
    let h = HeaderMap::new();
    for _ in 0..20 {
        let p = u
            .pick(&ctx(&h), Attempts::avoiding(&[&first]))
            .expect("picked");
        assert_eq!(&*p.endpoint.address.host, "10.0.0.2");
    }
    let second = HostPort::new("10.0.0.2", 80).expect("valid");
    assert!(
        u.pick(&ctx(&h), Attempts::avoiding(&[&first, &second]))
            .is_some(),
        "all tried: reuse one"
    );
}

#[test]
fn consistent_hash_by_header_and_cookie_generation() {
    let mut c = cluster(LoadBalancer::RoundRobin);
    c.consistent_hash = Some(
        crate::config::cluster::ConsistentHash::from_proto(proto::ConsistentHash {
            key: Some(proto::consistent_hash::Key::Header("x-user".into())),
            ..Default::default()
        })
        .expect("valid"),
    );
    let u = upstream(
        c,
        (1..=4).map(|i| endpoint(i, 1, "")).collect(),
        &NodeInfo::default(),
    );
    for user in ["alice", "bob", "carol"] {
        let mut h = HeaderMap::new();
        h.insert("x-user", HeaderValue::from_static(user).clone());
        let counts = spread(&u, 50, &h);
        assert_eq!(counts.len(), 1, "{user} sticks to one endpoint: {counts:?}");
    }
    // No key: random over all.
    assert!(spread(&u, 400, &HeaderMap::new()).len() > 1);

    let mut c = cluster(LoadBalancer::RoundRobin);
    c.consistent_hash = Some(
        crate::config::cluster::ConsistentHash::from_proto(proto::ConsistentHash {
            key: Some(proto::consistent_hash::Key::Cookie(proto::HashCookie {
                name: "session".into(),
                path: "/app".into(),
                ttl: Some(prost_types::Duration {
                    seconds: 60,
                    nanos: 0,
                }),
                attributes: vec![
                    proto::CookieAttribute {
                        name: "SameSite".into(),
                        value: "Lax".into(),
                    },
                    proto::CookieAttribute {
                        name: "Secure".into(),
                        value: String::new(),
                    },
                ],
            })),
            algorithm: proto::HashAlgorithm::Maglev as i32,
            ..Default::default()
        })
        .expect("valid"),
    );
    let u = upstream(
        c,
        (1..=4).map(|i| endpoint(i, 1, "")).collect(),
        &NodeInfo::default(),
    );
    let h = HeaderMap::new();
    let picked = u.pick(&ctx(&h), Attempts::default()).expect("picked");
    let cookie = picked
        .set_cookie()
        .expect("cookie generated")
        .to_str()
        .expect("ascii");
    assert!(cookie.starts_with("session="), "{cookie}");
    assert!(
        cookie.ends_with("; Max-Age=60; Path=/app; SameSite=Lax; Secure; HttpOnly"),
        "{cookie}"
    );
    // The client sends it back: same endpoint, no new cookie.
    let value = cookie.split(';').next().expect("pair").to_string();
    let mut back = HeaderMap::new();
    back.insert(
        http::header::COOKIE,
        HeaderValue::from_str(&value).expect("valid"),
    );
    let again = u.pick(&ctx(&back), Attempts::default()).expect("picked");
    assert_eq!(again.endpoint.address, picked.endpoint.address);
    assert!(again.set_cookie().is_none());
}

fn node(locality: &str) -> NodeInfo {
    NodeInfo {
        locality: locality.into(),
        ..NodeInfo::default()
    }
}

#[test]
fn locality_prefers_nearest_and_fails_over_when_ejected() {
    let mut c = cluster(LoadBalancer::RoundRobin);
    c.locality_lb = Some(
        crate::config::cluster::LocalityLb::from_proto(proto::LocalityLb {
            failover: vec![proto::LocalityFailover {
                from: "us".into(),
                to: "eu".into(),
            }],
            ..Default::default()
        })
        .expect("valid"),
    );
    c.outlier = Some(
        crate::config::cluster::OutlierDetection::from_proto(proto::OutlierDetection {
            consecutive_5xx: 1,
            max_ejection_percent: 100,
            ..Default::default()
        })
        .expect("valid"),
    );
    let u = upstream(
        c,
        vec![
            endpoint(1, 1, "ap/z/s"),
            endpoint(2, 1, "eu/z/s"),
            endpoint(3, 1, "us/b/s"),
            endpoint(4, 1, "us/a/s"),
        ],
        &node("us/a/s"),
    );
    let h = HeaderMap::new();
    let only = |expected: &str| {
        let counts = spread(&u, 30, &h);
        assert_eq!(
            counts.keys().collect::<Vec<_>>(),
            vec![expected],
            "{counts:?}"
        );
    };
    only("10.0.0.4");
    let eject = |i: usize| {
        let ep = &u.endpoint_list()[i];
        u.report(ep, AttemptResult::Response(StatusCode::SERVICE_UNAVAILABLE));
        assert!(ep.stats.outlier.is_ejected());
    };
    eject(3);
    only("10.0.0.3");
    eject(2);
    // Another region: the failover target before the rest.
    only("10.0.0.2");
    eject(1);
    only("10.0.0.1");
    eject(0);
    assert!(
        u.pick(&ctx(&h), Attempts::default()).is_none(),
        "all ejected, panic mode off"
    );
}

#[test]
fn retries_to_remote_localities_leave_tried_levels_every_second_attempt() {
    let mut c = cluster(LoadBalancer::RoundRobin);
    c.locality_lb = Some(
        crate::config::cluster::LocalityLb::from_proto(proto::LocalityLb::default())
            .expect("valid"),
    );
    let u = upstream(
        c,
        vec![
            endpoint(1, 1, "us/a/s"),
            endpoint(2, 1, "us/a/s"),
            endpoint(3, 1, "us/b/s"),
            endpoint(4, 1, "eu/z/s"),
        ],
        &node("us/a/s"),
    );
    let h = HeaderMap::new();
    let host = |i: usize| HostPort::new(&format!("10.0.0.{i}"), 80).expect("valid");
    let (one, two, three, four) = (host(1), host(2), host(3), host(4));
    let picks = |tried: &[&HostPort], avoid_levels: bool| {
        let mut seen: Vec<String> = (0..20)
            .map(|_| {
                let attempts = Attempts {
                    hosts: tried,
                    avoid_hosts: false,
                    avoid_levels,
                };
                let p = u.pick(&ctx(&h), attempts).expect("picked");
                p.endpoint.address.host.to_string()
            })
            .collect();
        seen.sort();
        seen.dedup();
        seen
    };
    let local = ["10.0.0.1", "10.0.0.2"];
    // The first retry stays in the local zone (update frequency 2).
    assert_eq!(picks(&[&one], true), local);
    // Two attempts in the local zone: the next level, the other zone.
    assert_eq!(picks(&[&one, &two], true), ["10.0.0.3"]);
    // The local zone and the other zone tried: the other region.
    assert_eq!(picks(&[&one, &three], true), ["10.0.0.4"]);
    // The third attempt's level only counts from the fourth on.
    assert_eq!(picks(&[&one, &two, &three], true), ["10.0.0.3"]);
    // Every level tried: start over from the nearest.
    assert_eq!(picks(&[&one, &three, &four, &two], true), local);
    // Without the option retries stay local.
    assert_eq!(picks(&[&one, &two], false), local);
}

#[test]
fn panic_mode_ignores_ejections_below_min_health() {
    let mut c = cluster(LoadBalancer::RoundRobin);
    c.outlier = Some(
        crate::config::cluster::OutlierDetection::from_proto(proto::OutlierDetection {
            consecutive_5xx: 1,
            max_ejection_percent: 100,
            min_health_percent: 60,
            ..Default::default()
        })
        .expect("valid"),
    );
    let u = upstream(
        c,
        (1..=2).map(|i| endpoint(i, 1, "")).collect(),
        &NodeInfo::default(),
    );
    u.report(
        &u.endpoint_list()[0],
        AttemptResult::Response(StatusCode::BAD_GATEWAY),
    );
    // 50% healthy < 60%: both endpoints take traffic.
    assert_eq!(spread(&u, 40, &HeaderMap::new()).len(), 2);
}

#[test]
fn distribute_splits_traffic_by_percentage() {
    let mut c = cluster(LoadBalancer::Random);
    c.locality_lb = Some(
        crate::config::cluster::LocalityLb::from_proto(proto::LocalityLb {
            distribute: vec![proto::LocalityDistribute {
                from: "r/a/*".into(),
                to: [("r/a/*".to_string(), 80), ("r/b/*".to_string(), 20)]
                    .into_iter()
                    .collect(),
            }],
            ..Default::default()
        })
        .expect("valid"),
    );
    let u = upstream(
        c,
        vec![
            endpoint(1, 1, "r/a/x"),
            endpoint(2, 1, "r/b/x"),
            endpoint(3, 1, "r/b/x"),
        ],
        &node("r/a/x"),
    );
    let n = 5000;
    let counts = spread(&u, n, &HeaderMap::new());
    let a = share(&counts, "10.0.0.1", n);
    assert!((0.76..0.84).contains(&a), "{counts:?}");
}

#[test]
fn warmup_ramps_new_endpoints_up() {
    let mut c = cluster(LoadBalancer::RoundRobin);
    c.warmup = Some(crate::config::cluster::Warmup::linear(Duration::from_secs(
        100,
    )));
    let old = endpoint(1, 1, "");
    let fresh = endpoint(2, 1, "");
    // The old endpoint appeared long ago; the fresh one just now.
    let long_ago = std::time::Instant::now()
        .checked_sub(Duration::from_secs(1000))
        .expect("clock far enough from boot");
    let old = Endpoint {
        stats: Arc::new(crate::config::cluster::EndpointStats {
            created: long_ago,
            ..Default::default()
        }),
        ..old
    };
    let u = upstream(c, vec![old, fresh], &NodeInfo::default());
    let n = 4000;
    let counts = spread(&u, n, &HeaderMap::new());
    // Fresh: weight floor 10% -> about 1/11 of traffic.
    let f = share(&counts, "10.0.0.2", n);
    assert!((0.05..0.14).contains(&f), "{counts:?}");
}

#[test]
fn warmup_aggression_bends_the_ramp() {
    use crate::config::cluster::Warmup;
    let window = Duration::from_secs(160);
    let linear = Warmup::linear(window);
    let steep = Warmup {
        aggression: 4.0,
        min_factor: 0.05,
        ..linear
    };
    let tenth = Duration::from_secs(10);
    assert!((linear.factor(tenth) - 0.1).abs() < 1e-9, "floor at 10%");
    assert!((linear.factor(Duration::from_secs(80)) - 0.5).abs() < 1e-9);
    // (10 / 160) ^ (1 / 4) = 0.5.
    assert!((steep.factor(tenth) - 0.5).abs() < 1e-9);
    assert!((steep.factor(Duration::ZERO) - 0.05).abs() < 0.01);
    assert_eq!(steep.factor(window), 1.0);

    // Through the pick: an endpoint 10 s into a steep 160 s ramp gets half
    // its weight, so a third of the traffic beside a warm one.
    let mut c = cluster(LoadBalancer::RoundRobin);
    c.warmup = Some(steep);
    let aged = |address: usize, age: Duration| {
        let created = std::time::Instant::now()
            .checked_sub(age)
            .expect("clock far enough from boot");
        Endpoint {
            stats: Arc::new(crate::config::cluster::EndpointStats {
                created,
                ..Default::default()
            }),
            ..endpoint(address, 1, "")
        }
    };
    let u = upstream(
        c,
        vec![aged(1, Duration::from_secs(1000)), aged(2, tenth)],
        &NodeInfo::default(),
    );
    let n = 6000;
    let counts = spread(&u, n, &HeaderMap::new());
    let f = share(&counts, "10.0.0.2", n);
    assert!((0.29..0.38).contains(&f), "{counts:?}");
}

#[test]
fn state_is_kept_unless_pool_settings_change() {
    let c = cluster(LoadBalancer::RoundRobin);
    let state = ClusterState::new(&c);
    let mut lb_change = c.clone();
    lb_change.load_balancer = LoadBalancer::Random;
    assert!(state.fits(&lb_change));
    let mut pool_change = c.clone();
    pool_change.pool.max_connections = Some(3);
    assert!(!state.fits(&pool_change));
    let mut h2 = c;
    h2.pool.h2_upgrade = true;
    h2.protocol = crate::config::common::Protocol::Http;
    assert!(!state.fits(&h2));
}

#[test]
fn plans_are_reused_for_the_same_inputs() {
    let c = Arc::new(cluster(LoadBalancer::RoundRobin));
    let eps = Some(Arc::new(EndpointSet {
        cluster: c.name.clone(),
        endpoints: vec![endpoint(1, 1, "")],
    }));
    let state = ClusterState::new(&c);
    let a = state.plan_for(&c, eps.as_ref(), &NodeInfo::default());
    let b = state.plan_for(&c, eps.as_ref(), &NodeInfo::default());
    assert!(Arc::ptr_eq(&a, &b));
    let other = Some(Arc::new(EndpointSet::clone(eps.as_deref().expect("set"))));
    let c2 = state.plan_for(&c, other.as_ref(), &NodeInfo::default());
    assert!(!Arc::ptr_eq(&a, &c2));
}

/// A backend answering every request with `status` and its name.
async fn status_backend(name: &'static str, status: u16) -> std::net::SocketAddr {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(move |_req| async move {
                    http::Response::builder()
                        .status(status)
                        .body(http_body_util::Full::new(bytes::Bytes::from(name)))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Sends one GET through pick/send/report, as the HTTP layer does.
async fn attempt(u: &Upstream) -> Option<(String, u16)> {
    let h = HeaderMap::new();
    let picked = u.pick(&ctx(&h), Attempts::default())?;
    let uri = format!("http://{}/", picked.endpoint.address.authority);
    let req = Request::get(uri)
        .body(RequestBody::empty())
        .expect("request");
    let resp = u
        .send(req, Some(picked.endpoint), Some(picked.in_flight))
        .await;
    let result = match &resp {
        Ok(r) => AttemptResult::Response(r.status()),
        Err(SendError::ConnectFailure(_)) => AttemptResult::ConnectFailure,
        Err(_) => AttemptResult::Reset,
    };
    u.report(picked.endpoint, result);
    let status = resp.ok()?.status().as_u16();
    Some((picked.endpoint.address.to_string(), status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_failing_backend_and_brings_it_back() {
    let healthy = status_backend("healthy", 200).await;
    let failing = status_backend("failing", 503).await;
    let mut c = cluster(LoadBalancer::RoundRobin);
    c.outlier = Some(
        crate::config::cluster::OutlierDetection::from_proto(proto::OutlierDetection {
            consecutive_5xx: 2,
            interval: Some(prost_types::Duration {
                seconds: 0,
                nanos: 100_000_000,
            }),
            base_ejection_time: Some(prost_types::Duration {
                seconds: 0,
                nanos: 400_000_000,
            }),
            max_ejection_percent: 50,
            ..Default::default()
        })
        .expect("valid"),
    );
    let eps = [healthy, failing]
        .iter()
        .map(|a| Endpoint {
            address: HostPort::new(&a.ip().to_string(), u32::from(a.port())).expect("valid"),
            ..endpoint(0, 1, "")
        })
        .collect();
    let u = upstream(c, eps, &NodeInfo::default());
    let failing_addr = failing.to_string();
    // Round robin alternates: two 503s from the failing backend eject it.
    for _ in 0..4 {
        attempt(&u).await.expect("an endpoint");
    }
    assert!(u.endpoint_list()[1].stats.outlier.is_ejected());
    for _ in 0..10 {
        let (to, status) = attempt(&u).await.expect("an endpoint");
        assert_ne!(to, failing_addr, "ejected endpoint picked");
        assert_eq!(status, 200);
    }
    // After the ejection time (rounded up to an interval tick) it is back.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut back = false;
    for _ in 0..4 {
        let (to, _) = attempt(&u).await.expect("an endpoint");
        back |= to == failing_addr;
    }
    assert!(back, "the endpoint returned after its ejection time");
    // Its new 503s eject it again (the multiplier decayed while it was back
    // for more than an interval; growth is covered by the outlier tests).
    assert!(u.endpoint_list()[1].stats.outlier.is_ejected());
}
