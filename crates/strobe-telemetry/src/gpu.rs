//! Local GPU telemetry through NVML, loaded at run time.
//!
//! `libnvidia-ml.so.1` is opened with `dlopen` when sampling starts, so strobe builds and runs on
//! machines without NVIDIA drivers; there the report says "no GPU seen" and the run goes on.

use libloading::{Library, Symbol};
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use strobe_core::RunClock;
use strobe_report::{Gpu, GpuDevice};

type Ret = i32;
type Device = *mut c_void;

#[repr(C)]
#[derive(Default)]
struct MemoryV1 {
    total: u64,
    free: u64,
    used: u64,
}

#[repr(C)]
#[derive(Default)]
struct MemoryV2 {
    version: u32,
    total: u64,
    reserved: u64,
    free: u64,
    used: u64,
}

#[repr(C)]
#[derive(Default)]
struct Utilization {
    gpu: u32,
    memory: u32,
}

/// An initialised NVML.
pub struct Nvml {
    lib: Library,
    devices: Vec<(u32, Device, String)>,
}

// SAFETY: NVML is thread-safe; device handles are opaque pointers valid until nvmlShutdown.
unsafe impl Send for Nvml {}

/// What one sample read.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub index: u32,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub utilization_percent: Option<u32>,
    pub power_watts: Option<f64>,
}

impl Nvml {
    /// Loads and initialises NVML, or says why not (no library, no driver, no device).
    pub fn load() -> Result<Nvml, String> {
        // SAFETY: loading the NVIDIA management library runs its (driver-provided) initialisers.
        let lib = unsafe { Library::new("libnvidia-ml.so.1") }.map_err(|_| {
            "no GPU seen: libnvidia-ml.so.1 (the NVIDIA driver's NVML) is not on this machine"
                .to_owned()
        })?;
        // SAFETY: symbol types follow nvml.h.
        let devices = unsafe {
            let init: Symbol<unsafe extern "C" fn() -> Ret> = lib
                .get(b"nvmlInit_v2\0")
                .map_err(|e| format!("no GPU seen: NVML lacks nvmlInit_v2 ({e})"))?;
            let rc = init();
            if rc != 0 {
                return Err(format!(
                    "no GPU seen: nvmlInit_v2 failed with NVML error {rc}"
                ));
            }
            let count: Symbol<unsafe extern "C" fn(*mut u32) -> Ret> = lib
                .get(b"nvmlDeviceGetCount_v2\0")
                .map_err(|e| e.to_string())?;
            let by_index: Symbol<unsafe extern "C" fn(u32, *mut Device) -> Ret> = lib
                .get(b"nvmlDeviceGetHandleByIndex_v2\0")
                .map_err(|e| e.to_string())?;
            let name: Symbol<unsafe extern "C" fn(Device, *mut c_char, u32) -> Ret> =
                lib.get(b"nvmlDeviceGetName\0").map_err(|e| e.to_string())?;
            let mut n = 0u32;
            if count(&mut n) != 0 || n == 0 {
                return Err("no GPU seen: NVML reports no devices".into());
            }
            let mut devices = Vec::new();
            for i in 0..n {
                let mut d: Device = std::ptr::null_mut();
                if by_index(i, &mut d) != 0 {
                    continue;
                }
                let mut buf = [0 as c_char; 96];
                let label = if name(d, buf.as_mut_ptr(), buf.len() as u32) == 0 {
                    CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
                } else {
                    format!("GPU {i}")
                };
                devices.push((i, d, label));
            }
            devices
        };
        Ok(Nvml { lib, devices })
    }

    pub fn device_names(&self) -> Vec<(u32, String)> {
        self.devices
            .iter()
            .map(|(i, _, n)| (*i, n.clone()))
            .collect()
    }

    /// Reads every device once.
    pub fn read(&self) -> Vec<Reading> {
        // SAFETY: symbol types follow nvml.h; out-pointers point at owned, initialised structs.
        unsafe {
            let mem2: Option<Symbol<unsafe extern "C" fn(Device, *mut MemoryV2) -> Ret>> =
                self.lib.get(b"nvmlDeviceGetMemoryInfo_v2\0").ok();
            let mem1: Option<Symbol<unsafe extern "C" fn(Device, *mut MemoryV1) -> Ret>> =
                self.lib.get(b"nvmlDeviceGetMemoryInfo\0").ok();
            let util: Option<Symbol<unsafe extern "C" fn(Device, *mut Utilization) -> Ret>> =
                self.lib.get(b"nvmlDeviceGetUtilizationRates\0").ok();
            let power: Option<Symbol<unsafe extern "C" fn(Device, *mut u32) -> Ret>> =
                self.lib.get(b"nvmlDeviceGetPowerUsage\0").ok();
            self.devices
                .iter()
                .map(|&(index, d, _)| {
                    let mut r = Reading {
                        index,
                        memory_used_bytes: None,
                        memory_total_bytes: None,
                        utilization_percent: None,
                        power_watts: None,
                    };
                    // v2 excludes driver-reserved memory from "used", as nvidia-smi does.
                    let mut m2 = MemoryV2 {
                        version: (std::mem::size_of::<MemoryV2>() as u32) | (2 << 24),
                        ..MemoryV2::default()
                    };
                    if mem2.as_ref().is_some_and(|f| f(d, &mut m2) == 0) {
                        r.memory_used_bytes = Some(m2.used);
                        r.memory_total_bytes = Some(m2.total);
                    } else {
                        let mut m1 = MemoryV1::default();
                        if mem1.as_ref().is_some_and(|f| f(d, &mut m1) == 0) {
                            r.memory_used_bytes = Some(m1.used);
                            r.memory_total_bytes = Some(m1.total);
                        }
                    }
                    let mut u = Utilization::default();
                    if util.as_ref().is_some_and(|f| f(d, &mut u) == 0) {
                        r.utilization_percent = Some(u.gpu);
                    }
                    let mut mw = 0u32;
                    if power.as_ref().is_some_and(|f| f(d, &mut mw) == 0) {
                        r.power_watts = Some(mw as f64 / 1000.0);
                    }
                    r
                })
                .collect()
        }
    }
}

impl Drop for Nvml {
    fn drop(&mut self) {
        // SAFETY: nvmlShutdown pairs with the successful nvmlInit_v2 in `load`.
        unsafe {
            if let Ok(shutdown) = self
                .lib
                .get::<unsafe extern "C" fn() -> Ret>(b"nvmlShutdown\0")
            {
                shutdown();
            }
        }
    }
}

/// Samples local GPUs on a thread of its own until finished.
pub struct GpuSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Gpu>>,
}

impl GpuSampler {
    pub fn start(interval: Duration, clock: RunClock) -> GpuSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("strobe-gpu".into())
            .spawn(move || sample(interval, clock, &flag))
            .ok();
        GpuSampler { stop, thread }
    }

    pub fn finish(mut self) -> Gpu {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_else(|| Gpu {
                source: "none".into(),
                note: Some("the GPU sampling thread did not run".into()),
                devices: vec![],
            })
    }
}

fn sample(interval: Duration, clock: RunClock, stop: &AtomicBool) -> Gpu {
    let nvml = match Nvml::load() {
        Ok(n) => n,
        Err(note) => {
            return Gpu {
                source: "none".into(),
                note: Some(note),
                devices: vec![],
            }
        }
    };
    let mut devices: Vec<GpuDevice> = nvml
        .device_names()
        .into_iter()
        .map(|(index, name)| GpuDevice {
            index,
            name,
            ..GpuDevice::default()
        })
        .collect();
    loop {
        let t = clock.now_ns() as f64 / 1e9;
        for r in nvml.read() {
            let Some(d) = devices.iter_mut().find(|d| d.index == r.index) else {
                continue;
            };
            if let Some(total) = r.memory_total_bytes {
                d.memory_total_bytes = total;
            }
            if let Some(u) = r.memory_used_bytes {
                d.memory_used_bytes.push(t, u as f64);
            }
            if let Some(u) = r.utilization_percent {
                d.utilization_percent.push(t, u as f64);
            }
            if let Some(p) = r.power_watts {
                d.power_watts.push(t, p);
            }
        }
        // Sleep in short steps so that finishing is prompt.
        let until = std::time::Instant::now() + interval;
        while std::time::Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return Gpu {
                    source: "nvml".into(),
                    note: None,
                    devices,
                };
            }
            std::thread::sleep(Duration::from_millis(20).min(interval));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_nvml_the_sampler_says_no_gpu_seen() {
        if Nvml::load().is_ok() {
            return; // A GPU machine: covered by the device run in docs/validation.md.
        }
        let s = GpuSampler::start(Duration::from_millis(10), RunClock::starting_now());
        std::thread::sleep(Duration::from_millis(30));
        let g = s.finish();
        assert_eq!(g.source, "none");
        assert!(g.note.unwrap().contains("no GPU seen"));
    }
}
