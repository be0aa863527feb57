//! A criterion measurement of the benchmark thread's CPU time, for shared, oversubscribed machines.
//!
//! Wall time on a machine where other jobs hold the cores counts the time the benchmark sits
//! descheduled; thread CPU time (`CLOCK_THREAD_CPUTIME_ID`) does not. Cache and SMT interference
//! from the other jobs still shows, so compare only figures from the same run.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;

/// CPU time of the calling thread.
pub struct ThreadCpuTime;

fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, started: Duration) -> Duration {
        thread_cpu_now().saturating_sub(started)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Formats nanoseconds of CPU time, and throughput per CPU second.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = match typical {
            t if t < 1e3 => (1.0, "ns (cpu)"),
            t if t < 1e6 => (1e3, "µs (cpu)"),
            t if t < 1e9 => (1e6, "ms (cpu)"),
            _ => (1e9, "s (cpu)"),
        };
        values.iter_mut().for_each(|v| *v /= div);
        unit
    }

    fn scale_throughputs(&self, typical: f64, tp: &Throughput, values: &mut [f64]) -> &'static str {
        let (amount, units): (f64, [&'static str; 4]) = match *tp {
            Throughput::Bytes(b) => (b as f64, ["B/s", "KiB/s", "MiB/s", "GiB/s"]),
            Throughput::BytesDecimal(b) => (b as f64, ["B/s", "KB/s", "MB/s", "GB/s"]),
            Throughput::Elements(e) => (e as f64, ["elem/s", "Kelem/s", "Melem/s", "Gelem/s"]),
        };
        let step = if matches!(tp, Throughput::Bytes(_)) {
            1024.0
        } else {
            1000.0
        };
        let per_sec = amount * 1e9 / typical;
        let mut i = 0;
        let mut div = 1.0;
        while i < 3 && per_sec >= div * step {
            div *= step;
            i += 1;
        }
        values.iter_mut().for_each(|v| *v = amount * 1e9 / *v / div);
        units[i]
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_work_not_sleep() {
        let m = ThreadCpuTime;
        let t = m.start();
        std::thread::sleep(Duration::from_millis(60));
        let slept = m.end(t);
        assert!(
            slept < Duration::from_millis(30),
            "sleep counted: {slept:?}"
        );
        let t = m.start();
        let mut x = 0u64;
        while m.end(t) < Duration::from_millis(5) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(m.end(t) >= Duration::from_millis(5));
        let mut v = [1e9, 2e9];
        assert_eq!(
            CpuFormatter.scale_throughputs(1e9, &Throughput::Bytes(1 << 30), &mut v),
            "GiB/s"
        );
        assert_eq!(v, [1.0, 0.5]);
    }
}
