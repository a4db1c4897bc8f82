//! The scenario bodies for the libraries with `tokio::process`'s API: brood
//! and `tokio::process` itself. One macro, expanded once per `Command`
//! type, so both run exactly the same code.
//!
//! The scenario future runs in `Runtime::block_on`, as under
//! `#[tokio::main]`; concurrent waits are `tokio::spawn`ed tasks.

macro_rules! tokio_style_worker {
    // `$wait_calls`: a `fn() -> Option<u64>` giving the wait-family system
    // calls the library has made so far, if it counts them.
    ($Command:ty, $wait_calls:expr) => {
        use ::std::collections::VecDeque;
        use ::std::io;
        use ::std::process::Stdio;
        use ::tokio::io::AsyncReadExt;
        use $crate::children::Gate;
        use $crate::report::Report;
        use $crate::scenarios::{self, Flavor, LiveChildren, Params, Scenario, Staggered};
        use $crate::sys::{exact_rss_kib, now_ns, usage, vm_rss_kib, Phase};
        use $crate::workers::{capture_argv, check, parse_stamp, self_exe, warmup};

        pub fn run(scenario: Scenario, params: &Params, flavor: Flavor) -> io::Result<Report> {
            let runtime = match flavor {
                Flavor::MultiThread => ::tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?,
                Flavor::CurrentThread => ::tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?,
            };
            runtime.block_on(async {
                for _ in 0..warmup(params) {
                    check(<$Command>::new("/bin/true").spawn()?.wait().await?)?;
                }
                match scenario {
                    Scenario::S1 => s1(params).await,
                    Scenario::S2 => s2(params).await,
                    Scenario::S3 => s3(params).await,
                    Scenario::S4 => s4(params).await,
                    Scenario::S5 => s5(params).await,
                    Scenario::S6 => s6(params).await,
                }
            })
        }

        async fn s1(params: &Params) -> io::Result<Report> {
            let n = params.get("n", 2000);
            let phase = Phase::start();
            for _ in 0..n {
                check(<$Command>::new("/bin/true").spawn()?.wait().await?)?;
            }
            Ok(scenarios::per_op_report(Scenario::S1, n, phase.end()))
        }

        async fn s2(params: &Params) -> io::Result<Report> {
            let n = params.get("n", 2000);
            let inflight = params.get("inflight", 256) as usize;
            let mut queue = VecDeque::with_capacity(inflight);
            let phase = Phase::start();
            for _ in 0..n {
                if queue.len() == inflight {
                    let oldest: ::tokio::task::JoinHandle<_> =
                        queue.pop_front().expect("full queue");
                    check(oldest.await??)?;
                }
                let mut child = <$Command>::new("/bin/true").spawn()?;
                queue.push_back(::tokio::spawn(async move { child.wait().await }));
            }
            for task in queue {
                check(task.await??)?;
            }
            Ok(scenarios::per_op_report(Scenario::S2, n, phase.end()))
        }

        async fn s3(params: &Params) -> io::Result<Report> {
            let n = params.get("n", 2000);
            let sleep_s = params.get("sleep_s", 2);
            let mut children = Vec::with_capacity(n as usize);
            let exact_before_kib = exact_rss_kib()?;
            let rss_before_kib = vm_rss_kib()?;
            let phase = Phase::start();
            for _ in 0..n {
                children.push(<$Command>::new("sleep").arg(sleep_s.to_string()).spawn()?);
            }
            let spawn_end_ns = now_ns();
            let spawn = phase.end();
            let exact_spawned_kib = exact_rss_kib()?;
            let tasks: Vec<_> = children
                .into_iter()
                .map(|mut child| {
                    ::tokio::spawn(async move {
                        let status = child.wait().await;
                        (status, now_ns())
                    })
                })
                .collect();
            let exact_live_kib = exact_rss_kib()?;
            let mut last_resolved_ns = 0;
            for task in tasks {
                let (status, resolved) = task.await?;
                check(status?)?;
                last_resolved_ns = last_resolved_ns.max(resolved);
            }
            Ok(LiveChildren {
                n,
                sleep_s,
                spawn,
                spawn_end_ns,
                last_resolved_ns,
                rss_before_kib,
                after: usage(),
                exact_before_kib,
                exact_live_kib,
                exact_spawned_kib,
            }
            .report())
        }

        async fn s4(params: &Params) -> io::Result<Report> {
            let bytes = params.get("bytes", 268_435_456);
            let (program, args) = capture_argv(params);
            let mut captures = Vec::new();
            for _ in 0..params.get("captures", 3) {
                let phase = Phase::start();
                let output = <$Command>::new(program).args(&args).output().await?;
                let cost = phase.end();
                check(output.status)?;
                if output.stdout.len() as u64 != bytes {
                    return Err(io::Error::other("short capture"));
                }
                drop(output);
                captures.push((cost.wall_us, cost.cpu_us));
            }
            Ok(scenarios::capture_report(bytes, &captures, usage()))
        }

        async fn s5(params: &Params) -> io::Result<Report> {
            let exe = self_exe()?;
            let mut latencies = Vec::new();
            for _ in 0..params.get("runs", 500) {
                let mut child = <$Command>::new(&exe)
                    .arg("stamp")
                    .stdout(Stdio::piped())
                    .spawn()?;
                let status = child.wait().await;
                let woke = now_ns();
                check(status?)?;
                let mut out = Vec::new();
                child
                    .stdout
                    .take()
                    .expect("piped")
                    .read_to_end(&mut out)
                    .await?;
                latencies.push(woke as f64 - parse_stamp(&out)? as f64);
            }
            Ok(scenarios::latency_report(&latencies))
        }

        async fn s6(params: &Params) -> io::Result<Report> {
            let n = params.get("n", 500);
            let exe = self_exe()?;
            let gate = Gate::new()?;
            let mut tasks = Vec::with_capacity(n as usize);
            let wait_calls: fn() -> Option<u64> = $wait_calls;
            let calls_before = wait_calls();
            let total = Phase::start();
            for i in 0..n {
                let offset = scenarios::stagger_offset_ns(params, i, n);
                let mut child = <$Command>::new(&exe)
                    .arg("sleeper")
                    .arg(offset.to_string())
                    .stdin(gate.stdin()?)
                    .spawn()?;
                let task = ::tokio::spawn(async move {
                    let status = child.wait().await;
                    (status, now_ns())
                });
                tasks.push((task, offset));
            }
            let spawn = total.end();
            let reap = Phase::start();
            let t0 = gate.release(n)?;
            let mut lags_ns = Vec::with_capacity(n as usize);
            for (task, offset) in tasks {
                let (status, resolved) = task.await?;
                check(status?)?;
                lags_ns.push(resolved as f64 - (t0 + offset) as f64);
            }
            Ok(Staggered {
                n,
                spawn,
                total: total.end(),
                reap: reap.end(),
                lags_ns,
                self_wait_calls: wait_calls()
                    .zip(calls_before)
                    .map(|(after, before)| after - before),
            }
            .report())
        }
    };
}
