//! The GPU itself: library presence, context and stream, device buffers, events and
//! graph-captured timing. Built on cudarc's checked `result` layer (raw FFI → checked
//! calls) with small owning handles here (the safe layer's per-slice event tracking
//! would put hidden records into timed regions and graph captures).

use crate::error::{Error, Result};
use crate::problem::{DType, WeightFormat};
use crate::quant::QuantTensor;
use cudarc::driver::{result as dr, sys as ds, CudaContext, CudaGraph, CudaStream};
use std::sync::Arc;

/// Names of the CUDA libraries that cannot be loaded here (empty when all can).
pub fn missing_libraries() -> Vec<&'static str> {
    let mut missing = Vec::new();
    // SAFETY: each check only tries to dlopen the library's candidate names.
    unsafe {
        if !cudarc::driver::sys::is_culib_present() {
            missing.push("libcuda.so (the NVIDIA driver)");
        }
        if !cudarc::cublas::sys::is_culib_present() {
            missing.push("libcublas.so");
        }
        if !cudarc::cublaslt::sys::is_culib_present() {
            missing.push("libcublasLt.so");
        }
        if !cudarc::nvrtc::sys::is_culib_present() {
            missing.push("libnvrtc.so");
        }
    }
    missing
}

/// Guard bytes allocated behind every device buffer.
pub const GUARD_BYTES: usize = 256;

pub fn drv(e: dr::DriverError) -> Error {
    Error::runtime(format!("CUDA driver: {e:?}"))
}

/// The oldest driver API the binary calls: built for CUDA 13 (cudarc `cuda-13000`), it
/// times with `cuEventElapsedTime_v2`, new in 12.8, and cudarc panics on a missing symbol
/// (every timing would fail, reported as kernels failing).
pub const MIN_DRIVER: i32 = 12080;

/// Refuses a driver older than `MIN_DRIVER`, naming both versions.
pub fn check_driver(version: i32) -> Result<()> {
    if version < MIN_DRIVER {
        return Err(Error::input(format!(
            "backend 'cuda' unavailable: the driver supports CUDA {}.{}; gemmtune needs {}.{} or newer (driver R570+)",
            version / 1000,
            version % 1000 / 10,
            MIN_DRIVER / 1000,
            MIN_DRIVER % 1000 / 10
        )));
    }
    Ok(())
}

/// An open GPU: context, one non-blocking stream, and the facts reports need.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub name: String,
    pub cc: (i32, i32),
    pub sms: i32,
    pub l2_bytes: usize,
    pub mem_bytes: usize,
    pub driver_version: i32,
}

impl Gpu {
    pub fn open(ordinal: usize) -> Result<Gpu> {
        let missing = missing_libraries();
        if !missing.is_empty() {
            return Err(Error::input(format!(
                "backend 'cuda' unavailable: cannot load {}",
                missing.join(", ")
            )));
        }
        dr::init().map_err(drv)?;
        let mut driver_version = 0;
        // SAFETY: writes one int.
        unsafe { ds::cuDriverGetVersion(&mut driver_version) }.result().map_err(drv)?;
        check_driver(driver_version)?;
        let count = dr::device::get_count().map_err(drv)?;
        if ordinal as i32 >= count {
            return Err(Error::input(format!(
                "backend 'cuda' unavailable: GPU {ordinal} requested, {count} visible"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(drv)?;
        // Slices made by the safe layer are not used for operands; no hidden events.
        // SAFETY: called before any allocation through this context.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(drv)?;
        use ds::CUdevice_attribute as A;
        let attr = |a| ctx.attribute(a).map_err(drv);
        Ok(Gpu {
            name: ctx.name().map_err(drv)?,
            cc: ctx.compute_capability().map_err(drv)?,
            sms: attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
            l2_bytes: attr(A::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)? as usize,
            mem_bytes: ctx.total_mem().map_err(drv)?,
            driver_version,
            ctx,
            stream,
        })
    }

    pub fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(drv)
    }

    pub fn cu_stream(&self) -> ds::CUstream {
        self.stream.cu_stream()
    }

    pub fn sync(&self) -> Result<()> {
        self.stream.synchronize().map_err(drv)
    }

    /// `len` elements plus `GUARD_BYTES` of guard behind them (see `guard_intact`).
    pub fn alloc(&self, dtype: DType, len: usize) -> Result<DevBuf> {
        let bytes = (len.max(1)) * dtype.bytes() as usize;
        self.bind()?;
        // SAFETY: a plain device allocation, freed in DevBuf::drop.
        let ptr = unsafe { dr::malloc_sync(bytes + GUARD_BYTES) }.map_err(|e| {
            Error::runtime(format!("cannot allocate {bytes} bytes on the GPU: {e:?}"))
        })?;
        Ok(DevBuf { ptr, len, dtype, bytes, packed: None, ctx: self.ctx.clone() })
    }

    /// Room for `rows × k` weights packed in `format` (the device layout: see `pack`),
    /// activations of type `dtype`.
    pub fn alloc_packed(&self, format: WeightFormat, rows: usize, k: usize, dtype: DType) -> Result<DevBuf> {
        let bytes = rows * crate::quant::row_bytes(format, k);
        let mut b = self.alloc_bytes(bytes)?;
        (b.len, b.dtype, b.packed) = (rows * k, dtype, Some((format, k)));
        Ok(b)
    }

    /// Packed weights on the device in the layout the kernels read: `quant::planar` for the
    /// int4 formats (fused kernels), GGUF's rows for q8_0 (only dequantized).
    pub fn upload_packed(&self, t: &QuantTensor, dtype: DType) -> Result<DevBuf> {
        let b = self.alloc_packed(t.format, t.rows, t.k, dtype)?;
        self.write_packed(&b, t)?;
        Ok(b)
    }

    /// Overwrites packed weights `b` (same format and shape) with `t`.
    pub fn write_packed(&self, b: &DevBuf, t: &QuantTensor) -> Result<()> {
        if b.packed != Some((t.format, t.k)) || b.len != t.elements() {
            return Err(Error::runtime(format!("packed buffer of {:?} does not fit {} x {} {}", b.packed, t.rows, t.k, t.format)));
        }
        match crate::quant::planar(t) {
            Some(bytes) => self.upload(b, &bytes),
            None => self.upload(b, &t.data),
        }
    }

    /// Whether the guard bytes behind `b` still hold 0xFF (set by `memset_with_guard`).
    pub fn guard_intact(&self, b: &DevBuf) -> Result<bool> {
        let mut g = vec![0u8; GUARD_BYTES];
        // SAFETY: the guard lies within the allocation (alloc added it); `g` outlives the
        // copy (synchronized below). Stream-ordered for the reason given at `upload`.
        unsafe { dr::memcpy_dtoh_async(&mut g, b.ptr + b.bytes as u64, self.cu_stream()) }.map_err(drv)?;
        self.sync()?;
        Ok(g.iter().all(|&x| x == 0xff))
    }

    /// Fills the buffer and its guard with `byte`.
    pub fn memset_with_guard(&self, dst: &DevBuf, byte: u8) -> Result<()> {
        // SAFETY: within the allocation, guard included.
        unsafe { dr::memset_d8_async(dst.ptr, byte, dst.bytes + GUARD_BYTES, self.cu_stream()) }.map_err(drv)
    }

    /// Raw bytes of a buffer allocated for anything (workspace, scratch).
    pub fn alloc_bytes(&self, bytes: usize) -> Result<DevBuf> {
        let mut b = self.alloc(DType::F32, bytes.div_ceil(4))?;
        b.bytes = bytes;
        Ok(b)
    }

    pub fn event(&self) -> Result<Event> {
        self.bind()?;
        Ok(Event(dr::event::create(ds::CUevent_flags::CU_EVENT_DEFAULT).map_err(drv)?))
    }

    /// Captures `work` into an instantiated, uploaded graph.
    pub fn capture(&self, work: impl FnOnce() -> Result<()>) -> Result<CudaGraph> {
        self.bind()?;
        self.stream
            .begin_capture(ds::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(drv)?;
        // A panic in `work` must not leave the stream capturing: every later call on it
        // would fail with a capture error, blamed on the kernels that made it.
        let captured = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let graph = self.stream.end_capture(ds::CUgraphInstantiate_flags(0));
        let captured = captured.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        captured?;
        let graph = graph.map_err(drv)?.ok_or_else(|| Error::runtime("empty graph captured"))?;
        graph.upload().map_err(drv)?;
        Ok(graph)
    }

    /// Times one replay of `graph` with events, milliseconds.
    pub fn time_replay(&self, graph: &CudaGraph) -> Result<f64> {
        self.time_eager(|| graph.launch().map_err(drv))
    }

    /// Times `work` launched eagerly (no graph), milliseconds.
    pub fn time_eager(&self, work: impl FnOnce() -> Result<()>) -> Result<f64> {
        self.bind()?;
        let (a, b) = (self.event()?, self.event()?);
        // SAFETY: as above.
        unsafe {
            dr::event::record(a.0, self.cu_stream()).map_err(drv)?;
            work()?;
            dr::event::record(b.0, self.cu_stream()).map_err(drv)?;
            dr::event::synchronize(b.0).map_err(drv)?;
            Ok(dr::event::elapsed(a.0, b.0).map_err(drv)? as f64)
        }
    }

    /// Copies `src` into `dst` in order on the backend's stream and waits for it.
    ///
    /// Why not `cuMemcpyHtoD`: that copy runs on the legacy default stream, which does not
    /// order with our non-blocking stream, and from pageable memory it may return before
    /// the DMA has landed. A kernel queued next on our stream could then read the old
    /// contents: an intermittent wrong gather of sample indices that made correct kernels
    /// fail validation (f16 8x4104x1024 on the H100).
    pub fn upload<T: Copy>(&self, dst: &DevBuf, src: &[T]) -> Result<()> {
        assert!(std::mem::size_of_val(src) <= dst.bytes);
        self.bind()?;
        // SAFETY: dst holds at least the bytes copied; `src` outlives the copy because
        // the stream is synchronized before returning.
        unsafe { dr::memcpy_htod_async(dst.ptr, src, self.cu_stream()) }.map_err(drv)?;
        self.sync()
    }

    /// Queues the copy of `src` into `dst` on the stream without waiting for it.
    ///
    /// # Safety
    /// `src` must stay alive and unchanged until the stream has passed the copy (a later
    /// `sync`, `download_raw` or `upload` on this stream).
    pub unsafe fn upload_queued<T: Copy>(&self, dst: &DevBuf, src: &[T]) -> Result<()> {
        assert!(std::mem::size_of_val(src) <= dst.bytes);
        self.bind()?;
        // SAFETY: dst holds the bytes copied; the caller keeps src alive (see above).
        unsafe { dr::memcpy_htod_async(dst.ptr, src, self.cu_stream()) }.map_err(drv)
    }

    pub fn download_raw<T: Copy + Default>(&self, src: &DevBuf, n: usize) -> Result<Vec<T>> {
        assert!(n * std::mem::size_of::<T>() <= src.bytes);
        let mut v = vec![T::default(); n];
        // SAFETY: as above; stream-ordered after everything queued before.
        unsafe { dr::memcpy_dtoh_async(&mut v, src.ptr, self.cu_stream()) }.map_err(drv)?;
        self.sync()?;
        Ok(v)
    }

    pub fn memset(&self, dst: &DevBuf, byte: u8) -> Result<()> {
        self.memset_range(dst, 0, byte, dst.bytes)
    }

    /// Sets `bytes` bytes of `dst` from byte `offset` on to `byte` (stream-ordered, no wait).
    pub fn memset_range(&self, dst: &DevBuf, offset: usize, byte: u8, bytes: usize) -> Result<()> {
        assert!(offset + bytes <= dst.bytes, "memset past the end of the buffer");
        // SAFETY: within the allocation (checked above).
        unsafe { dr::memset_d8_async(dst.ptr + offset as u64, byte, bytes, self.cu_stream()) }.map_err(drv)
    }

    /// Device-to-device copy bandwidth (bytes read + written per second), best of 10.
    pub fn copy_bandwidth(&self) -> Result<f64> {
        let bytes = crate::backend::COPY_BYTES;
        let (a, b) = (self.alloc_bytes(bytes)?, self.alloc_bytes(bytes)?);
        self.memset(&a, 0x3c)?;
        crate::backend::best_copy_rate(|| {
            self.time_eager(|| {
                // SAFETY: both buffers hold `bytes`.
                unsafe { dr::memcpy_dtod_async(b.ptr, a.ptr, bytes, self.cu_stream()) }.map_err(drv)
            })
        })
    }
}

/// A kernel launch like cudarc's `LaunchArgs` (same `arg`/`launch` calls), optionally as a
/// programmatic dependent launch (PDL, sm_90+): the kernel may be scheduled while the one
/// before it on the stream is still running, and waits for it with `griddepcontrol.wait`
/// (every kernel of ours starts with `PDL_ENTRY()`, kernels/common.cuh). In a captured
/// graph this becomes a programmatic edge, which hides most of the gap between the many
/// small kernels of a decode step. cudarc's builder has no launch attributes, hence this.
pub struct Launch<'a> {
    stream: &'a CudaStream,
    f: &'a cudarc::driver::CudaFunction,
    args: Vec<*mut std::ffi::c_void>,
    pdl: bool,
    cluster_y: u32,
}

impl<'a> Launch<'a> {
    pub fn arg<T: cudarc::driver::DeviceRepr>(&mut self, v: &'a T) -> &mut Self {
        self.args.push(v as *const T as *mut std::ffi::c_void);
        self
    }

    /// Launches the grid as thread-block clusters of 1 x `y` x 1 blocks (sm_90+; the grid's
    /// y must be a multiple of `y`).
    pub fn cluster(&mut self, y: u32) -> &mut Self {
        self.cluster_y = y;
        self
    }

    /// # Safety
    /// The arguments must match the kernel's parameters and the grid must only touch
    /// memory the caller owns.
    pub unsafe fn launch(&mut self, cfg: cudarc::driver::LaunchConfig) -> std::result::Result<(), dr::DriverError> {
        if !self.pdl && self.cluster_y <= 1 {
            // The plain launch: no extended-launch entry point needed from the driver.
            return dr::launch_kernel(self.f.cu_function(), cfg.grid_dim, cfg.block_dim, cfg.shared_mem_bytes, self.stream.cu_stream(), &mut self.args);
        }
        let mut attrs: Vec<ds::CUlaunchAttribute> = Vec::with_capacity(2);
        if self.pdl {
            let mut attr: ds::CUlaunchAttribute = std::mem::zeroed();
            attr.id = ds::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
            attr.value.programmaticStreamSerializationAllowed = 1;
            attrs.push(attr);
        }
        if self.cluster_y > 1 {
            let mut attr: ds::CUlaunchAttribute = std::mem::zeroed();
            attr.id = ds::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
            attr.value.clusterDim.x = 1;
            attr.value.clusterDim.y = self.cluster_y;
            attr.value.clusterDim.z = 1;
            attrs.push(attr);
        }
        let c = ds::CUlaunchConfig {
            gridDimX: cfg.grid_dim.0,
            gridDimY: cfg.grid_dim.1,
            gridDimZ: cfg.grid_dim.2,
            blockDimX: cfg.block_dim.0,
            blockDimY: cfg.block_dim.1,
            blockDimZ: cfg.block_dim.2,
            sharedMemBytes: cfg.shared_mem_bytes,
            hStream: self.stream.cu_stream(),
            attrs: attrs.as_mut_ptr(),
            numAttrs: attrs.len() as u32,
        };
        ds::cuLaunchKernelEx(&c, self.f.cu_function(), self.args.as_mut_ptr(), std::ptr::null_mut()).result()
    }
}

/// A TMA descriptor (CUtensorMap) passed to a kernel by value (`__grid_constant__`).
#[derive(Clone, Copy)]
pub struct TmaMap(#[allow(dead_code)] ds::CUtensorMap); // read by the kernel, not by Rust

// SAFETY: a plain 128-byte-aligned array of u64, which is what the kernel parameter is.
unsafe impl cudarc::driver::DeviceRepr for TmaMap {}

/// The TMA descriptor of the row-major `rows` x `k` matrix of 16-bit `dtype` at `ptr`,
/// copied in boxes of 64 values x `box_rows` rows with the 128-byte swizzle; rows past
/// `rows` read as zeros. Needs `k % 8 == 0` (16-byte row pitch) and a 16-byte aligned `ptr`.
pub fn tensor_map(ptr: ds::CUdeviceptr, rows: usize, k: usize, box_rows: u32, dtype: DType) -> Result<TmaMap> {
    use ds::{CUtensorMapDataType as T, CUtensorMapFloatOOBfill as F, CUtensorMapInterleave as I, CUtensorMapL2promotion as L, CUtensorMapSwizzle as S};
    let ty = match dtype {
        DType::BF16 => T::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
        DType::F16 => T::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
        DType::F32 => return Err(Error::runtime("TMA boxes here are of 16-bit values")),
    };
    let dims: [u64; 2] = [k as u64, rows as u64];
    let strides: [u64; 1] = [2 * k as u64];
    let boxes: [u32; 2] = [64, box_rows];
    let unit: [u32; 2] = [1, 1];
    let mut map = std::mem::MaybeUninit::<ds::CUtensorMap>::uninit();
    // SAFETY: every array holds the rank's (2) entries (strides: rank - 1); the driver
    // writes the map.
    unsafe {
        ds::cuTensorMapEncodeTiled(
            map.as_mut_ptr(),
            ty,
            2,
            ptr as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            unit.as_ptr(),
            I::CU_TENSOR_MAP_INTERLEAVE_NONE,
            S::CU_TENSOR_MAP_SWIZZLE_128B,
            L::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            F::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
        .result()
        .map_err(drv)?;
        Ok(TmaMap(map.assume_init()))
    }
}

impl Gpu {
    /// A launch of `f` on the stream, programmatic-dependent when `pdl` and the GPU has it.
    pub fn launcher<'a>(&'a self, f: &'a cudarc::driver::CudaFunction, pdl: bool) -> Launch<'a> {
        Launch { stream: &self.stream, f, args: Vec::with_capacity(12), pdl: pdl && self.cc.0 >= 9, cluster_y: 1 }
    }
}

/// A device allocation holding `len` elements of `dtype`, or for packed weights `len`
/// weights in `packed = (format, K)` for activations of type `dtype`.
pub struct DevBuf {
    pub ptr: ds::CUdeviceptr,
    pub len: usize,
    pub dtype: DType,
    pub bytes: usize,
    pub packed: Option<(WeightFormat, usize)>,
    ctx: Arc<CudaContext>,
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: allocated by malloc_sync in this context, freed once.
        unsafe {
            let _ = dr::free_sync(self.ptr);
        }
    }
}

pub struct Event(pub ds::CUevent);
impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: created by event::create, destroyed once.
        unsafe {
            let _ = dr::event::destroy(self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_before_12_8_are_refused_by_version() {
        let e = check_driver(12020).unwrap_err().to_string();
        assert!(e.contains("CUDA 12.2") && e.contains("12.8 or newer"), "{e}");
        assert_eq!(e.lines().count(), 1);
        assert!(check_driver(12080).is_ok() && check_driver(13000).is_ok());
    }
}
