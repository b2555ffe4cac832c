//! Checked calls and owning handles over the HIP runtime: the libraries (loaded once),
//! the device and its stream, device buffers with a guard region, events, modules and
//! captured graphs. Errors carry the library's status name (`hipErrorOutOfMemory`).

use super::sys::{self, hipError_t, Libs};
use crate::error::{Error, Result};
use crate::problem::DType;
use std::ffi::{c_void, CStr, CString};
use std::sync::{Arc, OnceLock};

/// The ROCm libraries of this process, or the one-line reason they cannot be used.
pub fn libs() -> Result<&'static Libs> {
    static LIBS: OnceLock<std::result::Result<Libs, String>> = OnceLock::new();
    LIBS.get_or_init(|| sys::load(&sys::Search::from_env()))
        .as_ref()
        .map_err(|e| Error::input(format!("backend 'rocm' unavailable: {e}")))
}

/// What is missing for the ROCm backend here, `None` when all libraries load.
pub fn missing() -> Option<String> {
    libs().err().map(|e| e.to_string())
}

fn name_of(l: &Libs, code: hipError_t) -> String {
    // SAFETY: hipGetErrorName returns a static string (or null for unknown codes).
    let p = unsafe { (l.hip.hipGetErrorName)(code) };
    if p.is_null() {
        "hipErrorUnknown".into()
    } else {
        // SAFETY: non-null, NUL-terminated, static.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// `Ok` for hipSuccess, else `what: hipErrorName (code)`.
pub fn check(l: &Libs, code: hipError_t, what: &str) -> Result<()> {
    if code == sys::hipSuccess {
        Ok(())
    } else {
        Err(Error::runtime(format!("{what}: {} ({code})", name_of(l, code))))
    }
}

/// Guard bytes allocated behind every device buffer (as on CUDA).
pub const GUARD_BYTES: usize = 256;

/// Facts about the device that reports and ids need.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub name: String,
    /// Full target id, e.g. `gfx942:sramecc+:xnack-` (what hipRTC and TunableOp use).
    pub arch: String,
    pub cus: i32,
    pub warp: i32,
    pub l2_bytes: usize,
    pub mem_bytes: usize,
}

impl DeviceInfo {
    /// The processor part of the target id (`gfx942`).
    pub fn gfx(&self) -> &str {
        self.arch.split(':').next().unwrap_or("")
    }
}

fn c_chars(s: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = s.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// One device: its ordinal, a non-blocking stream and its facts.
pub struct Gpu {
    pub l: &'static Libs,
    pub ordinal: i32,
    pub stream: sys::hipStream_t,
    pub info: DeviceInfo,
    pub runtime_version: i32,
    pub driver_version: i32,
}

// SAFETY: the stream handle is used under the backend's lock.
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

impl Gpu {
    pub fn open(ordinal: usize) -> Result<Gpu> {
        let l = libs()?;
        let h = &l.hip;
        let (mut count, mut rt, mut drv) = (0, 0, 0);
        // SAFETY: each call writes the ints passed.
        unsafe {
            check(l, (h.hipInit)(0), "hipInit")?;
            check(l, (h.hipGetDeviceCount)(&mut count), "hipGetDeviceCount")?;
            if ordinal as i32 >= count {
                return Err(Error::input(format!("backend 'rocm' unavailable: GPU {ordinal} requested, {count} visible")));
            }
            check(l, (h.hipSetDevice)(ordinal as i32), "hipSetDevice")?;
            check(l, (h.hipRuntimeGetVersion)(&mut rt), "hipRuntimeGetVersion")?;
            check(l, (h.hipDriverGetVersion)(&mut drv), "hipDriverGetVersion")?;
        }
        // SAFETY: the struct is plain data, written whole by the call.
        let mut props: Box<sys::hipDeviceProp_tR0600> = Box::new(unsafe { std::mem::zeroed() });
        check(l, unsafe { (h.hipGetDevicePropertiesR0600)(&mut *props, ordinal as i32) }, "hipGetDeviceProperties")?;
        let info = DeviceInfo {
            name: c_chars(&props.name),
            arch: c_chars(&props.gcnArchName),
            cus: props.multiProcessorCount,
            warp: props.warpSize,
            l2_bytes: props.l2CacheSize.max(0) as usize,
            mem_bytes: props.totalGlobalMem,
        };
        let mut stream: sys::hipStream_t = std::ptr::null_mut();
        // SAFETY: creates one stream, destroyed in Drop.
        check(l, unsafe { (h.hipStreamCreateWithFlags)(&mut stream, sys::hipStreamNonBlocking) }, "hipStreamCreateWithFlags")?;
        Ok(Gpu { l, ordinal: ordinal as i32, stream, info, runtime_version: rt, driver_version: drv })
    }

    /// Makes this device current on the calling thread (HIP's current device is per thread).
    pub fn bind(&self) -> Result<()> {
        // SAFETY: plain call.
        check(self.l, unsafe { (self.l.hip.hipSetDevice)(self.ordinal) }, "hipSetDevice")
    }

    pub fn sync(&self) -> Result<()> {
        // SAFETY: our stream.
        check(self.l, unsafe { (self.l.hip.hipStreamSynchronize)(self.stream) }, "hipStreamSynchronize")
    }

    /// `len` elements plus `GUARD_BYTES` of guard behind them (see `guard_intact`).
    pub fn alloc(&self, dtype: DType, len: usize) -> Result<DevBuf> {
        let bytes = len.max(1) * dtype.bytes() as usize;
        self.bind()?;
        let mut p: *mut c_void = std::ptr::null_mut();
        // SAFETY: a plain device allocation, freed in DevBuf::drop.
        check(self.l, unsafe { (self.l.hip.hipMalloc)(&mut p, bytes + GUARD_BYTES) }, &format!("hipMalloc of {bytes} bytes"))?;
        Ok(DevBuf { ptr: p as u64, len, dtype, bytes, l: self.l })
    }

    /// Raw bytes (workspace, scratch).
    pub fn alloc_bytes(&self, bytes: usize) -> Result<DevBuf> {
        let mut b = self.alloc(DType::F32, bytes.div_ceil(4))?;
        b.bytes = bytes;
        Ok(b)
    }

    fn memset_raw(&self, ptr: u64, byte: u8, n: usize) -> Result<()> {
        // SAFETY: callers pass ranges inside one allocation.
        check(self.l, unsafe { (self.l.hip.hipMemsetAsync)(ptr as *mut c_void, byte as i32, n, self.stream) }, "hipMemsetAsync")
    }

    /// Fills the buffer and its guard with `byte`.
    pub fn memset_with_guard(&self, b: &DevBuf, byte: u8) -> Result<()> {
        self.memset_raw(b.ptr, byte, b.bytes + GUARD_BYTES)
    }

    pub fn memset(&self, b: &DevBuf, byte: u8) -> Result<()> {
        self.memset_raw(b.ptr, byte, b.bytes)
    }

    /// Whether the guard bytes behind `b` still hold 0xFF (set by `memset_with_guard`).
    pub fn guard_intact(&self, b: &DevBuf) -> Result<bool> {
        let mut g = vec![0u8; GUARD_BYTES];
        self.copy_to_host(&mut g, b.ptr + b.bytes as u64)?;
        Ok(g.iter().all(|&x| x == 0xff))
    }

    /// Stream-ordered copy of `dst.len()` elements from device address `src`, waited for
    /// (ordered with the kernels on our stream, see the CUDA side's `upload`).
    fn copy_to_host<T: Copy>(&self, dst: &mut [T], src: u64) -> Result<()> {
        // SAFETY: `dst` outlives the copy (synchronized before returning).
        check(
            self.l,
            unsafe {
                (self.l.hip.hipMemcpyAsync)(
                    dst.as_mut_ptr() as *mut c_void,
                    src as *const c_void,
                    std::mem::size_of_val(dst),
                    sys::hipMemcpyDeviceToHost,
                    self.stream,
                )
            },
            "hipMemcpyAsync (device to host)",
        )?;
        self.sync()
    }

    pub fn upload<T: Copy>(&self, dst: &DevBuf, src: &[T]) -> Result<()> {
        assert!(std::mem::size_of_val(src) <= dst.bytes);
        // SAFETY: dst holds the bytes copied; `src` outlives the copy (synchronized).
        check(
            self.l,
            unsafe {
                (self.l.hip.hipMemcpyAsync)(
                    dst.ptr as *mut c_void,
                    src.as_ptr() as *const c_void,
                    std::mem::size_of_val(src),
                    sys::hipMemcpyHostToDevice,
                    self.stream,
                )
            },
            "hipMemcpyAsync (host to device)",
        )?;
        self.sync()
    }

    pub fn download_raw<T: Copy + Default>(&self, src: &DevBuf, n: usize) -> Result<Vec<T>> {
        assert!(n * std::mem::size_of::<T>() <= src.bytes);
        let mut v = vec![T::default(); n];
        self.copy_to_host(&mut v, src.ptr)?;
        Ok(v)
    }

    pub fn event(&self) -> Result<Event> {
        let mut e: sys::hipEvent_t = std::ptr::null_mut();
        // SAFETY: creates one event, destroyed in Drop.
        check(self.l, unsafe { (self.l.hip.hipEventCreateWithFlags)(&mut e, sys::hipEventDefault) }, "hipEventCreate")?;
        Ok(Event(e, self.l))
    }

    /// Times `work` enqueued on our stream between two events, milliseconds.
    pub fn time_eager(&self, work: impl FnOnce() -> Result<()>) -> Result<f64> {
        self.bind()?;
        let (a, b) = (self.event()?, self.event()?);
        let h = &self.l.hip;
        let mut ms = 0f32;
        // SAFETY: events and stream are alive for the whole block.
        unsafe {
            check(self.l, (h.hipEventRecord)(a.0, self.stream), "hipEventRecord")?;
            work()?;
            check(self.l, (h.hipEventRecord)(b.0, self.stream), "hipEventRecord")?;
            check(self.l, (h.hipEventSynchronize)(b.0), "hipEventSynchronize")?;
            check(self.l, (h.hipEventElapsedTime)(&mut ms, a.0, b.0), "hipEventElapsedTime")?;
        }
        Ok(ms as f64)
    }

    /// Captures `work` on our stream into an instantiated graph.
    pub fn capture(&self, work: impl FnOnce() -> Result<()>) -> Result<Graph> {
        self.bind()?;
        let h = &self.l.hip;
        // SAFETY: capture begins and ends on our stream; the graph is owned by Graph.
        unsafe {
            check(self.l, (h.hipStreamBeginCapture)(self.stream, sys::hipStreamCaptureModeThreadLocal), "hipStreamBeginCapture")?;
            // A panic in `work` must not leave the stream capturing (every later call on it
            // would fail, blamed on other kernels): the capture ends first.
            let captured = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let mut graph: sys::hipGraph_t = std::ptr::null_mut();
            let ended = check(self.l, (h.hipStreamEndCapture)(self.stream, &mut graph), "hipStreamEndCapture");
            let mut g = Graph { graph, exec: std::ptr::null_mut(), l: self.l };
            // (The partial graph in `g` is destroyed as the panic goes on.)
            let captured = captured.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            captured?;
            ended?;
            if g.graph.is_null() {
                return Err(Error::runtime("empty graph captured"));
            }
            check(
                self.l,
                (h.hipGraphInstantiate)(&mut g.exec, g.graph, std::ptr::null_mut(), std::ptr::null_mut(), 0),
                "hipGraphInstantiate",
            )?;
            Ok(g)
        }
    }

    /// Enqueues one replay of `g`.
    pub fn replay(&self, g: &Graph) -> Result<()> {
        // SAFETY: instantiated graph, our stream.
        check(self.l, unsafe { (self.l.hip.hipGraphLaunch)(g.exec, self.stream) }, "hipGraphLaunch")
    }

    /// Device-to-device copy bandwidth (bytes read + written per second), best of 10.
    pub fn copy_bandwidth(&self) -> Result<f64> {
        let bytes = crate::backend::COPY_BYTES;
        let (a, b) = (self.alloc_bytes(bytes)?, self.alloc_bytes(bytes)?);
        self.memset(&a, 0x3c)?;
        crate::backend::best_copy_rate(|| {
            self.time_eager(|| {
                // SAFETY: both buffers hold `bytes`.
                check(
                    self.l,
                    unsafe {
                        (self.l.hip.hipMemcpyAsync)(
                            b.ptr as *mut c_void,
                            a.ptr as *const c_void,
                            bytes,
                            sys::hipMemcpyDeviceToDevice,
                            self.stream,
                        )
                    },
                    "hipMemcpyAsync (device to device)",
                )
            })
        })
    }

    /// Loads a code object (hipRTC output).
    pub fn load_module(&self, image: &[u8]) -> Result<Arc<Module>> {
        self.bind()?;
        let mut m: sys::hipModule_t = std::ptr::null_mut();
        // SAFETY: `image` is a complete code object; the module is unloaded in Drop.
        check(self.l, unsafe { (self.l.hip.hipModuleLoadData)(&mut m, image.as_ptr() as *const c_void) }, "hipModuleLoadData")?;
        Ok(Arc::new(Module(m, self.l)))
    }

    /// Enqueues `f` with its arguments packed in `args` (see `Args`).
    pub fn launch(&self, f: &Function, grid: (u32, u32, u32), block: u32, args: &Args) -> Result<()> {
        let mut buf = args.bytes.clone();
        let mut size = buf.len();
        let mut extra: [*mut c_void; 5] = [
            sys::HIP_LAUNCH_PARAM_BUFFER_POINTER as *mut c_void,
            buf.as_mut_ptr() as *mut c_void,
            sys::HIP_LAUNCH_PARAM_BUFFER_SIZE as *mut c_void,
            &mut size as *mut usize as *mut c_void,
            sys::HIP_LAUNCH_PARAM_END as *mut c_void,
        ];
        // SAFETY: the argument buffer matches the kernel's parameter list (built by the
        // caller in declaration order with natural alignment); it is copied at launch.
        check(
            self.l,
            unsafe {
                (self.l.hip.hipModuleLaunchKernel)(
                    f.ptr,
                    grid.0,
                    grid.1,
                    grid.2,
                    block,
                    1,
                    1,
                    0,
                    self.stream,
                    std::ptr::null_mut(),
                    extra.as_mut_ptr(),
                )
            },
            "hipModuleLaunchKernel",
        )
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // SAFETY: created in open(), destroyed once.
        unsafe {
            let _ = (self.l.hip.hipStreamSynchronize)(self.stream);
            let _ = (self.l.hip.hipStreamDestroy)(self.stream);
        }
    }
}

/// Kernel arguments packed as the C ABI lays out a struct of them: each at its natural
/// alignment, in declaration order (`hipModuleLaunchKernel`'s `extra` buffer). HIP reads
/// each parameter at its offset in the kernel's metadata (ROCm/clr
/// `hipamd/src/hip_module.cpp`), and graph capture copies the whole buffer.
#[derive(Default, Clone, Debug)]
pub struct Args {
    bytes: Vec<u8>,
}

impl Args {
    fn push(mut self, v: &[u8]) -> Args {
        let align = v.len();
        while !self.bytes.len().is_multiple_of(align) {
            self.bytes.push(0);
        }
        self.bytes.extend_from_slice(v);
        self
    }
    pub fn u64(self, v: u64) -> Args {
        self.push(&v.to_le_bytes())
    }
    pub fn i32(self, v: i32) -> Args {
        self.push(&v.to_le_bytes())
    }
    /// The buffer size HIP is told: padded to the largest alignment (8).
    fn finish(&self) -> Vec<u8> {
        let mut b = self.bytes.clone();
        while !b.len().is_multiple_of(8) {
            b.push(0);
        }
        b
    }
    pub fn build(self) -> Args {
        Args { bytes: self.finish() }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A device allocation holding `len` elements of `dtype` (plus the guard).
pub struct DevBuf {
    pub ptr: u64,
    pub len: usize,
    pub dtype: DType,
    pub bytes: usize,
    l: &'static Libs,
}

// SAFETY: a device address; freeing it is thread-agnostic.
unsafe impl Send for DevBuf {}

impl Drop for DevBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by hipMalloc, freed once.
        unsafe {
            let _ = (self.l.hip.hipFree)(self.ptr as *mut c_void);
        }
    }
}

pub struct Event(pub sys::hipEvent_t, &'static Libs);

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: created by hipEventCreateWithFlags, destroyed once.
        unsafe {
            let _ = (self.1.hip.hipEventDestroy)(self.0);
        }
    }
}

/// A loaded code object.
pub struct Module(sys::hipModule_t, &'static Libs);

// SAFETY: module handles are process-wide; functions are looked up under the backend's lock.
unsafe impl Send for Module {}
unsafe impl Sync for Module {}

impl Module {
    pub fn function(self: &Arc<Module>, name: &str) -> Result<Function> {
        let c = CString::new(name).expect("no NUL in kernel names");
        let mut f: sys::hipFunction_t = std::ptr::null_mut();
        // SAFETY: the module is alive (Function keeps it so).
        check(self.1, unsafe { (self.1.hip.hipModuleGetFunction)(&mut f, self.0, c.as_ptr()) }, &format!("hipModuleGetFunction({name})"))?;
        Ok(Function { ptr: f, _module: self.clone() })
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: loaded once, unloaded once (after every Function holding it).
        unsafe {
            let _ = (self.1.hip.hipModuleUnload)(self.0);
        }
    }
}

/// A kernel entry point; keeps its module loaded.
#[derive(Clone)]
pub struct Function {
    ptr: sys::hipFunction_t,
    _module: Arc<Module>,
}

// SAFETY: see Module.
unsafe impl Send for Function {}
unsafe impl Sync for Function {}

/// A captured, instantiated graph.
pub struct Graph {
    graph: sys::hipGraph_t,
    exec: sys::hipGraphExec_t,
    l: &'static Libs,
}

// SAFETY: graphs are only touched under the backend's lock.
unsafe impl Send for Graph {}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: each destroyed once, the executable first.
        unsafe {
            if !self.exec.is_null() {
                let _ = (self.l.hip.hipGraphExecDestroy)(self.exec);
            }
            if !self.graph.is_null() {
                let _ = (self.l.hip.hipGraphDestroy)(self.graph);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_arguments_follow_the_c_struct_layout() {
        // (const u16* x, const u16* w, u16* y, int M, int N, int K, float* ws, unsigned* c)
        let a = Args::default().u64(1).u64(2).u64(3).i32(4).i32(5).i32(6).u64(7).u64(8).build();
        let b = a.as_bytes();
        assert_eq!(b.len(), 56);
        assert_eq!(&b[24..28], &4i32.to_le_bytes());
        assert_eq!(&b[32..36], &6i32.to_le_bytes());
        assert_eq!(&b[36..40], &[0; 4], "padding before the next pointer");
        assert_eq!(&b[40..48], &7u64.to_le_bytes());
        // (const u16* x, const u16* w, u16* y, int M, int N, int K): 36 bytes padded to 40.
        assert_eq!(Args::default().u64(1).u64(2).u64(3).i32(4).i32(5).i32(6).build().as_bytes().len(), 40);
    }

    #[test]
    fn target_id_processor() {
        let d = DeviceInfo { name: "x".into(), arch: "gfx942:sramecc+:xnack-".into(), cus: 304, warp: 64, l2_bytes: 0, mem_bytes: 0 };
        assert_eq!(d.gfx(), "gfx942");
        let mut name = [0 as std::ffi::c_char; 8];
        for (i, c) in b"gfx90a".iter().enumerate() {
            name[i] = *c as std::ffi::c_char;
        }
        assert_eq!(c_chars(&name), "gfx90a");
    }
}
