//! Raw layer: the ROCm libraries opened at run time with `libloading`, one table of
//! function pointers per library, and the enum values and structs they take.
//!
//! Why by hand: `hip-runtime-sys` links `libamdhip64` at build time (no build without
//! ROCm) and binds neither rocBLAS, hipBLASLt nor hipRTC; `rocmrc` lacks
//! `rocblas_gemm_ex_get_solutions` (shared/reference/apis.md §2). The ~60 functions used
//! here are few enough to declare from the headers.
//!
//! Every signature, value and layout below is copied as data from the ROCm headers:
//! - HIP: ROCm/HIP @c5e11fca (ROCm 6.3) `include/hip/hip_runtime_api.h`,
//!   `include/hip/driver_types.h`, `include/hip/hiprtc.h`, `include/hip/library_types.h`;
//! - rocBLAS: ROCm/rocBLAS @b520bc83 (rocBLAS 4.4.0)
//!   `library/include/internal/rocblas-{types,auxiliary,functions,beta}.h`;
//! - hipBLASLt: ROCm/hipBLASLt @7d9fb683 (hipBLASLt 0.11.0) `library/include/hipblaslt.h`,
//!   with `hipblasStatus_t`, `hipblasOperation_t`, `hipblasComputeType_t` from
//!   ROCm/hipBLAS-common @9666c576 (2.2.0) `library/include/hipblas-common.h`.
//!
//! The tests at the bottom pin them.
//!
//! Library search: with `ROCM_PATH` set only `$ROCM_PATH/lib` (and `lib64`) is searched,
//! so an explicit installation is never silently mixed with another; otherwise the
//! dynamic loader's path (`LD_LIBRARY_PATH`, ld.so.cache), then `/opt/rocm/lib`. Each
//! library is tried under its unversioned and its ROCm 7.x / 6.x sonames. ROCm 6.0 or
//! newer is required (`hipGetDevicePropertiesR0600`).

#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code)]

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::path::PathBuf;

// ---- HIP runtime (hip_runtime_api.h, driver_types.h) ----

pub type hipError_t = c_int;
pub const hipSuccess: hipError_t = 0;
pub type hipStream_t = *mut c_void;
pub type hipEvent_t = *mut c_void;
pub type hipModule_t = *mut c_void;
pub type hipFunction_t = *mut c_void;
pub type hipGraph_t = *mut c_void;
pub type hipGraphExec_t = *mut c_void;
pub type hipGraphNode_t = *mut c_void;

/// `hipMemcpyKind` (driver_types.h).
pub const hipMemcpyHostToDevice: c_int = 1;
pub const hipMemcpyDeviceToHost: c_int = 2;
pub const hipMemcpyDeviceToDevice: c_int = 3;
/// `hipStreamCreateWithFlags` flag: no implicit synchronization with the null stream.
pub const hipStreamNonBlocking: c_uint = 0x01;
/// `hipEventCreateWithFlags` default flags (timing enabled).
pub const hipEventDefault: c_uint = 0x0;
/// `hipStreamCaptureMode`.
pub const hipStreamCaptureModeThreadLocal: c_int = 1;
/// `extra` argument of `hipModuleLaunchKernel`: a packed argument buffer.
pub const HIP_LAUNCH_PARAM_BUFFER_POINTER: usize = 0x01;
pub const HIP_LAUNCH_PARAM_BUFFER_SIZE: usize = 0x02;
pub const HIP_LAUNCH_PARAM_END: usize = 0x03;

/// `hipDeviceProp_tR0600` (what `hipDeviceProp_t` names since ROCm 6.0), field for field.
/// Only a few fields are read, but the whole struct must be allocated: the library writes
/// all of it. Size and offsets checked against the header compiled with gcc (x86-64).
#[repr(C)]
pub struct hipDeviceProp_tR0600 {
    pub name: [c_char; 256],
    pub uuid: [c_char; 16],
    pub luid: [c_char; 8],
    pub luidDeviceNodeMask: c_uint,
    pub totalGlobalMem: usize,
    pub sharedMemPerBlock: usize,
    pub regsPerBlock: c_int,
    pub warpSize: c_int,
    pub memPitch: usize,
    pub maxThreadsPerBlock: c_int,
    pub maxThreadsDim: [c_int; 3],
    pub maxGridSize: [c_int; 3],
    pub clockRate: c_int,
    pub totalConstMem: usize,
    pub major: c_int,
    pub minor: c_int,
    pub textureAlignment: usize,
    pub texturePitchAlignment: usize,
    pub deviceOverlap: c_int,
    pub multiProcessorCount: c_int,
    pub kernelExecTimeoutEnabled: c_int,
    pub integrated: c_int,
    pub canMapHostMemory: c_int,
    pub computeMode: c_int,
    pub maxTexture1D: c_int,
    pub maxTexture1DMipmap: c_int,
    pub maxTexture1DLinear: c_int,
    pub maxTexture2D: [c_int; 2],
    pub maxTexture2DMipmap: [c_int; 2],
    pub maxTexture2DLinear: [c_int; 3],
    pub maxTexture2DGather: [c_int; 2],
    pub maxTexture3D: [c_int; 3],
    pub maxTexture3DAlt: [c_int; 3],
    pub maxTextureCubemap: c_int,
    pub maxTexture1DLayered: [c_int; 2],
    pub maxTexture2DLayered: [c_int; 3],
    pub maxTextureCubemapLayered: [c_int; 2],
    pub maxSurface1D: c_int,
    pub maxSurface2D: [c_int; 2],
    pub maxSurface3D: [c_int; 3],
    pub maxSurface1DLayered: [c_int; 2],
    pub maxSurface2DLayered: [c_int; 3],
    pub maxSurfaceCubemap: c_int,
    pub maxSurfaceCubemapLayered: [c_int; 2],
    pub surfaceAlignment: usize,
    pub concurrentKernels: c_int,
    pub ECCEnabled: c_int,
    pub pciBusID: c_int,
    pub pciDeviceID: c_int,
    pub pciDomainID: c_int,
    pub tccDriver: c_int,
    pub asyncEngineCount: c_int,
    pub unifiedAddressing: c_int,
    pub memoryClockRate: c_int,
    pub memoryBusWidth: c_int,
    pub l2CacheSize: c_int,
    pub persistingL2CacheMaxSize: c_int,
    pub maxThreadsPerMultiProcessor: c_int,
    pub streamPrioritiesSupported: c_int,
    pub globalL1CacheSupported: c_int,
    pub localL1CacheSupported: c_int,
    pub sharedMemPerMultiprocessor: usize,
    pub regsPerMultiprocessor: c_int,
    pub managedMemory: c_int,
    pub isMultiGpuBoard: c_int,
    pub multiGpuBoardGroupID: c_int,
    pub hostNativeAtomicSupported: c_int,
    pub singleToDoublePrecisionPerfRatio: c_int,
    pub pageableMemoryAccess: c_int,
    pub concurrentManagedAccess: c_int,
    pub computePreemptionSupported: c_int,
    pub canUseHostPointerForRegisteredMem: c_int,
    pub cooperativeLaunch: c_int,
    pub cooperativeMultiDeviceLaunch: c_int,
    pub sharedMemPerBlockOptin: usize,
    pub pageableMemoryAccessUsesHostPageTables: c_int,
    pub directManagedMemAccessFromHost: c_int,
    pub maxBlocksPerMultiProcessor: c_int,
    pub accessPolicyMaxWindowSize: c_int,
    pub reservedSharedMemPerBlock: usize,
    pub hostRegisterSupported: c_int,
    pub sparseHipArraySupported: c_int,
    pub hostRegisterReadOnlySupported: c_int,
    pub timelineSemaphoreInteropSupported: c_int,
    pub memoryPoolsSupported: c_int,
    pub gpuDirectRDMASupported: c_int,
    pub gpuDirectRDMAFlushWritesOptions: c_uint,
    pub gpuDirectRDMAWritesOrdering: c_int,
    pub memoryPoolSupportedHandleTypes: c_uint,
    pub deferredMappingHipArraySupported: c_int,
    pub ipcEventSupported: c_int,
    pub clusterLaunch: c_int,
    pub unifiedFunctionPointers: c_int,
    pub reserved: [c_int; 63],
    pub hipReserved: [c_int; 32],
    pub gcnArchName: [c_char; 256],
    pub maxSharedMemoryPerMultiProcessor: usize,
    pub clockInstructionRate: c_int,
    /// `hipDeviceArch_t`: 21 one-bit fields in one `unsigned`.
    pub arch: c_uint,
    pub hdpMemFlushCntl: *mut c_uint,
    pub hdpRegFlushCntl: *mut c_uint,
    pub cooperativeMultiDeviceUnmatchedFunc: c_int,
    pub cooperativeMultiDeviceUnmatchedGridDim: c_int,
    pub cooperativeMultiDeviceUnmatchedBlockDim: c_int,
    pub cooperativeMultiDeviceUnmatchedSharedMem: c_int,
    pub isLargeBar: c_int,
    pub asicRevision: c_int,
}

// ---- hipRTC (hiprtc.h) ----

pub type hiprtcResult = c_int;
pub const HIPRTC_SUCCESS: hiprtcResult = 0;
pub type hiprtcProgram = *mut c_void;

// ---- rocBLAS (rocblas-types.h) ----

pub type rocblas_handle = *mut c_void;
/// `rocblas_int` is `int32_t` (`int64_t` only in an ILP64 build, which rocBLAS never ships).
pub type rocblas_int = i32;
pub type rocblas_stride = i64;
pub type rocblas_status = c_int;
pub const rocblas_status_success: rocblas_status = 0;
pub const rocblas_status_invalid_value: rocblas_status = 11;
/// `rocblas_status` names by value (0..=15).
pub const ROCBLAS_STATUS_NAMES: [&str; 16] = [
    "rocblas_status_success",
    "rocblas_status_invalid_handle",
    "rocblas_status_not_implemented",
    "rocblas_status_invalid_pointer",
    "rocblas_status_invalid_size",
    "rocblas_status_memory_error",
    "rocblas_status_internal_error",
    "rocblas_status_perf_degraded",
    "rocblas_status_size_query_mismatch",
    "rocblas_status_size_increased",
    "rocblas_status_size_unchanged",
    "rocblas_status_invalid_value",
    "rocblas_status_continue",
    "rocblas_status_check_numerics_fail",
    "rocblas_status_excluded_from_build",
    "rocblas_status_arch_mismatch",
];
pub type rocblas_operation = c_int;
pub const rocblas_operation_none: rocblas_operation = 111;
pub const rocblas_operation_transpose: rocblas_operation = 112;
pub type rocblas_datatype = c_int;
pub const rocblas_datatype_f16_r: rocblas_datatype = 150;
pub const rocblas_datatype_f32_r: rocblas_datatype = 151;
pub const rocblas_datatype_bf16_r: rocblas_datatype = 168;
pub type rocblas_gemm_algo = c_int;
pub const rocblas_gemm_algo_standard: rocblas_gemm_algo = 0x0;
pub const rocblas_gemm_algo_solution_index: rocblas_gemm_algo = 0x1;
pub const rocblas_gemm_flags_none: u32 = 0x0;
pub type rocblas_pointer_mode = c_int;
pub const rocblas_pointer_mode_host: rocblas_pointer_mode = 0;

// ---- hipBLASLt (hipblaslt.h, hipblas-common.h, library_types.h) ----

pub type hipblasLtHandle_t = *mut c_void;
pub type hipblasLtMatmulDesc_t = *mut c_void;
pub type hipblasLtMatrixLayout_t = *mut c_void;
pub type hipblasLtMatmulPreference_t = *mut c_void;
pub type hipblasStatus_t = c_int;
pub const HIPBLAS_STATUS_SUCCESS: hipblasStatus_t = 0;
/// `hipblasStatus_t` names by value (0..=11).
pub const HIPBLAS_STATUS_NAMES: [&str; 12] = [
    "HIPBLAS_STATUS_SUCCESS",
    "HIPBLAS_STATUS_NOT_INITIALIZED",
    "HIPBLAS_STATUS_ALLOC_FAILED",
    "HIPBLAS_STATUS_INVALID_VALUE",
    "HIPBLAS_STATUS_MAPPING_ERROR",
    "HIPBLAS_STATUS_EXECUTION_FAILED",
    "HIPBLAS_STATUS_INTERNAL_ERROR",
    "HIPBLAS_STATUS_NOT_SUPPORTED",
    "HIPBLAS_STATUS_ARCH_MISMATCH",
    "HIPBLAS_STATUS_HANDLE_IS_NULLPTR",
    "HIPBLAS_STATUS_INVALID_ENUM",
    "HIPBLAS_STATUS_UNKNOWN",
];
/// `hipblasOperation_t`: 111/112, not cuBLAS's 0/1.
pub const HIPBLAS_OP_N: i32 = 111;
pub const HIPBLAS_OP_T: i32 = 112;
/// `hipblasComputeType_t`: 2, not cuBLAS's 68.
pub const HIPBLAS_COMPUTE_32F: c_int = 2;
/// `hipDataType`.
pub type hipDataType = c_int;
pub const HIP_R_32F: hipDataType = 0;
pub const HIP_R_16F: hipDataType = 2;
pub const HIP_R_16BF: hipDataType = 14;
/// `hipblasLtMatmulDescAttributes_t` (TRANSA/TRANSB hold an `int32_t` `hipblasOperation_t`).
pub const HIPBLASLT_MATMUL_DESC_TRANSA: c_int = 0;
pub const HIPBLASLT_MATMUL_DESC_TRANSB: c_int = 1;
/// `hipblasLtMatmulPreferenceAttributes_t` (MAX_WORKSPACE_BYTES holds a `uint64_t`).
pub const HIPBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: c_int = 1;
/// `hipblasLtMatrixLayoutAttribute_t` (BATCH_COUNT `int32_t`, STRIDED_BATCH_OFFSET `int64_t`).
pub const HIPBLASLT_MATRIX_LAYOUT_BATCH_COUNT: c_int = 0;
pub const HIPBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: c_int = 1;

/// `hipblasLtMatmulAlgo_t`: opaque, "can be trivially serialized and later restored for
/// use with the same version of hipBLASLt" (hipblaslt.h). 24 bytes, kept whole in ids.
/// Inside, hipBLASLt lays it out its own way (rocblaslt-types.h: a packed 8-byte index
/// block, a fallback flag, then its workspace limit at bytes 9-16), so the field names
/// here are the public header's, not what the bytes hold: the blob also carries the
/// workspace limit asked for (an id stays valid while `WORKSPACE` does), and padding is
/// deterministic only because the heuristic's result array is zero-filled before the call.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct hipblasLtMatmulAlgo_t {
    pub data: [u8; 16],
    pub max_workspace_bytes: usize,
}

/// `hipblasLtMatmulHeuristicResult_t`. 56 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct hipblasLtMatmulHeuristicResult_t {
    pub algo: hipblasLtMatmulAlgo_t,
    pub workspaceSize: usize,
    pub state: hipblasStatus_t,
    pub wavesCount: f32,
    pub reserved: [c_int; 4],
}

// ---- function tables ----

/// Declares one library's table: a struct of function pointers resolved by symbol name
/// (the field name is the symbol), and `SYMBOLS`, the list the completeness test checks.
macro_rules! table {
    ($name:ident { $( $f:ident : fn($($a:ty),* $(,)?) $(-> $r:ty)? ; )* }) => {
        pub struct $name {
            $( pub $f: unsafe extern "C" fn($($a),*) $(-> $r)?, )*
            _lib: libloading::Library,
        }
        impl $name {
            pub const SYMBOLS: &'static [&'static str] = &[$(stringify!($f)),*];
            /// Resolves every symbol; the first missing one is named in the error.
            fn resolve(lib: libloading::Library) -> Result<$name, String> {
                // SAFETY: the declared types are those of the ROCm headers cited above.
                unsafe {
                    $( let $f = *lib
                        .get::<unsafe extern "C" fn($($a),*) $(-> $r)?>(concat!(stringify!($f), "\0").as_bytes())
                        .map_err(|_| format!("symbol {} missing", stringify!($f)))?; )*
                    Ok($name { $($f,)* _lib: lib })
                }
            }
        }
    };
}

table!(Hip {
    hipInit: fn(c_uint) -> hipError_t;
    hipGetDeviceCount: fn(*mut c_int) -> hipError_t;
    hipSetDevice: fn(c_int) -> hipError_t;
    hipGetDevicePropertiesR0600: fn(*mut hipDeviceProp_tR0600, c_int) -> hipError_t;
    hipRuntimeGetVersion: fn(*mut c_int) -> hipError_t;
    hipDriverGetVersion: fn(*mut c_int) -> hipError_t;
    hipGetErrorName: fn(hipError_t) -> *const c_char;
    hipStreamCreateWithFlags: fn(*mut hipStream_t, c_uint) -> hipError_t;
    hipStreamDestroy: fn(hipStream_t) -> hipError_t;
    hipStreamSynchronize: fn(hipStream_t) -> hipError_t;
    hipMalloc: fn(*mut *mut c_void, usize) -> hipError_t;
    hipFree: fn(*mut c_void) -> hipError_t;
    hipMemcpyAsync: fn(*mut c_void, *const c_void, usize, c_int, hipStream_t) -> hipError_t;
    hipMemsetAsync: fn(*mut c_void, c_int, usize, hipStream_t) -> hipError_t;
    hipEventCreateWithFlags: fn(*mut hipEvent_t, c_uint) -> hipError_t;
    hipEventDestroy: fn(hipEvent_t) -> hipError_t;
    hipEventRecord: fn(hipEvent_t, hipStream_t) -> hipError_t;
    hipEventSynchronize: fn(hipEvent_t) -> hipError_t;
    hipEventElapsedTime: fn(*mut f32, hipEvent_t, hipEvent_t) -> hipError_t;
    hipModuleLoadData: fn(*mut hipModule_t, *const c_void) -> hipError_t;
    hipModuleUnload: fn(hipModule_t) -> hipError_t;
    hipModuleGetFunction: fn(*mut hipFunction_t, hipModule_t, *const c_char) -> hipError_t;
    hipModuleLaunchKernel: fn(
        hipFunction_t, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, hipStream_t, *mut *mut c_void, *mut *mut c_void,
    ) -> hipError_t;
    hipStreamBeginCapture: fn(hipStream_t, c_int) -> hipError_t;
    hipStreamEndCapture: fn(hipStream_t, *mut hipGraph_t) -> hipError_t;
    hipGraphInstantiate: fn(*mut hipGraphExec_t, hipGraph_t, *mut hipGraphNode_t, *mut c_char, usize) -> hipError_t;
    hipGraphLaunch: fn(hipGraphExec_t, hipStream_t) -> hipError_t;
    hipGraphExecDestroy: fn(hipGraphExec_t) -> hipError_t;
    hipGraphDestroy: fn(hipGraph_t) -> hipError_t;
});

table!(Hiprtc {
    hiprtcVersion: fn(*mut c_int, *mut c_int) -> hiprtcResult;
    hiprtcGetErrorString: fn(hiprtcResult) -> *const c_char;
    hiprtcCreateProgram: fn(*mut hiprtcProgram, *const c_char, *const c_char, c_int, *const *const c_char, *const *const c_char) -> hiprtcResult;
    hiprtcCompileProgram: fn(hiprtcProgram, c_int, *const *const c_char) -> hiprtcResult;
    hiprtcGetProgramLogSize: fn(hiprtcProgram, *mut usize) -> hiprtcResult;
    hiprtcGetProgramLog: fn(hiprtcProgram, *mut c_char) -> hiprtcResult;
    hiprtcGetCodeSize: fn(hiprtcProgram, *mut usize) -> hiprtcResult;
    hiprtcGetCode: fn(hiprtcProgram, *mut c_char) -> hiprtcResult;
    hiprtcDestroyProgram: fn(*mut hiprtcProgram) -> hiprtcResult;
});

table!(Rocblas {
    rocblas_create_handle: fn(*mut rocblas_handle) -> rocblas_status;
    rocblas_destroy_handle: fn(rocblas_handle) -> rocblas_status;
    rocblas_set_stream: fn(rocblas_handle, hipStream_t) -> rocblas_status;
    rocblas_set_pointer_mode: fn(rocblas_handle, rocblas_pointer_mode) -> rocblas_status;
    rocblas_initialize: fn();
    rocblas_get_version_string_size: fn(*mut usize) -> rocblas_status;
    rocblas_get_version_string: fn(*mut c_char, usize) -> rocblas_status;
    rocblas_gemm_ex: fn(
        rocblas_handle, rocblas_operation, rocblas_operation, rocblas_int, rocblas_int, rocblas_int,
        *const c_void, *const c_void, rocblas_datatype, rocblas_int, *const c_void, rocblas_datatype, rocblas_int,
        *const c_void, *const c_void, rocblas_datatype, rocblas_int, *mut c_void, rocblas_datatype, rocblas_int,
        rocblas_datatype, rocblas_gemm_algo, i32, u32,
    ) -> rocblas_status;
    // Beta API (rocblas-beta.h; exported by every build, declared only under
    // ROCBLAS_BETA_FEATURES_API).
    rocblas_gemm_ex_get_solutions: fn(
        rocblas_handle, rocblas_operation, rocblas_operation, rocblas_int, rocblas_int, rocblas_int,
        *const c_void, *const c_void, rocblas_datatype, rocblas_int, *const c_void, rocblas_datatype, rocblas_int,
        *const c_void, *const c_void, rocblas_datatype, rocblas_int, *mut c_void, rocblas_datatype, rocblas_int,
        rocblas_datatype, rocblas_gemm_algo, u32, *mut rocblas_int, *mut rocblas_int,
    ) -> rocblas_status;
    // The strided batched forms: each matrix argument followed by its batch stride, the
    // batch count after D's (rocblas-functions.h, rocblas-beta.h).
    rocblas_gemm_strided_batched_ex: fn(
        rocblas_handle, rocblas_operation, rocblas_operation, rocblas_int, rocblas_int, rocblas_int,
        *const c_void, *const c_void, rocblas_datatype, rocblas_int, rocblas_stride, *const c_void, rocblas_datatype,
        rocblas_int, rocblas_stride, *const c_void, *const c_void, rocblas_datatype, rocblas_int, rocblas_stride,
        *mut c_void, rocblas_datatype, rocblas_int, rocblas_stride, rocblas_int,
        rocblas_datatype, rocblas_gemm_algo, i32, u32,
    ) -> rocblas_status;
    rocblas_gemm_strided_batched_ex_get_solutions: fn(
        rocblas_handle, rocblas_operation, rocblas_operation, rocblas_int, rocblas_int, rocblas_int,
        *const c_void, *const c_void, rocblas_datatype, rocblas_int, rocblas_stride, *const c_void, rocblas_datatype,
        rocblas_int, rocblas_stride, *const c_void, *const c_void, rocblas_datatype, rocblas_int, rocblas_stride,
        *mut c_void, rocblas_datatype, rocblas_int, rocblas_stride, rocblas_int,
        rocblas_datatype, rocblas_gemm_algo, u32, *mut rocblas_int, *mut rocblas_int,
    ) -> rocblas_status;
});

table!(Hipblaslt {
    hipblasLtCreate: fn(*mut hipblasLtHandle_t) -> hipblasStatus_t;
    hipblasLtDestroy: fn(hipblasLtHandle_t) -> hipblasStatus_t;
    hipblasLtGetVersion: fn(hipblasLtHandle_t, *mut c_int) -> hipblasStatus_t;
    hipblasLtGetGitRevision: fn(hipblasLtHandle_t, *mut c_char) -> hipblasStatus_t;
    hipblasLtMatrixLayoutCreate: fn(*mut hipblasLtMatrixLayout_t, hipDataType, u64, u64, i64) -> hipblasStatus_t;
    hipblasLtMatrixLayoutDestroy: fn(hipblasLtMatrixLayout_t) -> hipblasStatus_t;
    hipblasLtMatrixLayoutSetAttribute: fn(hipblasLtMatrixLayout_t, c_int, *const c_void, usize) -> hipblasStatus_t;
    hipblasLtMatmulDescCreate: fn(*mut hipblasLtMatmulDesc_t, c_int, hipDataType) -> hipblasStatus_t;
    hipblasLtMatmulDescDestroy: fn(hipblasLtMatmulDesc_t) -> hipblasStatus_t;
    hipblasLtMatmulDescSetAttribute: fn(hipblasLtMatmulDesc_t, c_int, *const c_void, usize) -> hipblasStatus_t;
    hipblasLtMatmulPreferenceCreate: fn(*mut hipblasLtMatmulPreference_t) -> hipblasStatus_t;
    hipblasLtMatmulPreferenceDestroy: fn(hipblasLtMatmulPreference_t) -> hipblasStatus_t;
    hipblasLtMatmulPreferenceSetAttribute: fn(hipblasLtMatmulPreference_t, c_int, *const c_void, usize) -> hipblasStatus_t;
    hipblasLtMatmulAlgoGetHeuristic: fn(
        hipblasLtHandle_t, hipblasLtMatmulDesc_t, hipblasLtMatrixLayout_t, hipblasLtMatrixLayout_t, hipblasLtMatrixLayout_t,
        hipblasLtMatrixLayout_t, hipblasLtMatmulPreference_t, c_int, *mut hipblasLtMatmulHeuristicResult_t, *mut c_int,
    ) -> hipblasStatus_t;
    hipblasLtMatmul: fn(
        hipblasLtHandle_t, hipblasLtMatmulDesc_t, *const c_void, *const c_void, hipblasLtMatrixLayout_t, *const c_void,
        hipblasLtMatrixLayout_t, *const c_void, *const c_void, hipblasLtMatrixLayout_t, *mut c_void, hipblasLtMatrixLayout_t,
        *const hipblasLtMatmulAlgo_t, *mut c_void, usize, hipStream_t,
    ) -> hipblasStatus_t;
});

// ---- loading ----

/// Sonames tried for each library, newest ROCm first (7.x, then 6.x).
pub const HIP_NAMES: &[&str] = &["libamdhip64.so", "libamdhip64.so.7", "libamdhip64.so.6"];
pub const HIPRTC_NAMES: &[&str] = &["libhiprtc.so", "libhiprtc.so.7", "libhiprtc.so.6"];
pub const ROCBLAS_NAMES: &[&str] = &["librocblas.so", "librocblas.so.5", "librocblas.so.4"];
pub const HIPBLASLT_NAMES: &[&str] = &["libhipblaslt.so", "libhipblaslt.so.1", "libhipblaslt.so.0"];

/// Where libraries are looked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Search {
    /// Directories tried in order, each with every soname.
    pub dirs: Vec<PathBuf>,
    /// Whether bare sonames (the dynamic loader's own search) are tried first.
    pub system: bool,
}

impl Search {
    /// From the environment: `ROCM_PATH` alone if set, else the loader's path then
    /// /opt/rocm/lib.
    pub fn from_env() -> Search {
        match std::env::var_os("ROCM_PATH").filter(|p| !p.is_empty()) {
            Some(root) => {
                let root = PathBuf::from(root);
                Search { dirs: vec![root.join("lib"), root.join("lib64")], system: false }
            }
            None => Search { dirs: vec![PathBuf::from("/opt/rocm/lib")], system: true },
        }
    }

    pub fn describe(&self) -> String {
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        if self.system {
            format!("searched the loader path and {}", dirs.join(", "))
        } else {
            format!("searched {} (ROCM_PATH)", dirs.join(", "))
        }
    }

    fn open(&self, names: &[&str]) -> Option<libloading::Library> {
        let mut tries: Vec<PathBuf> = Vec::new();
        if self.system {
            tries.extend(names.iter().map(PathBuf::from));
        }
        for d in &self.dirs {
            tries.extend(names.iter().map(|n| d.join(n)));
        }
        // SAFETY: loading a ROCm library runs its initializers, which is what using it means.
        tries.into_iter().find_map(|p| unsafe { libloading::Library::new(&p) }.ok())
    }
}

/// The four libraries, all resolved.
pub struct Libs {
    pub hip: Hip,
    pub rtc: Hiprtc,
    pub blas: Rocblas,
    pub lt: Hipblaslt,
}

/// Opens every library; on failure, one line naming each that is missing or incomplete.
pub fn load(search: &Search) -> Result<Libs, String> {
    let mut problems: Vec<String> = Vec::new();
    let hip = search.open(HIP_NAMES);
    // hipRTC lives in its own library; older Linux builds also export it from libamdhip64.
    let rtc = search.open(HIPRTC_NAMES).or_else(|| search.open(HIP_NAMES));
    let blas = search.open(ROCBLAS_NAMES);
    let lt = search.open(HIPBLASLT_NAMES);
    let hip = resolved(hip, Hip::resolve, HIP_NAMES[0], "HIP runtime, ROCm 6.0 or newer", &mut problems);
    let rtc = resolved(rtc, Hiprtc::resolve, HIPRTC_NAMES[0], "hipRTC", &mut problems);
    let blas = resolved(blas, Rocblas::resolve, ROCBLAS_NAMES[0], "rocBLAS", &mut problems);
    let lt = resolved(lt, Hipblaslt::resolve, HIPBLASLT_NAMES[0], "hipBLASLt", &mut problems);
    match (hip, rtc, blas, lt) {
        (Some(hip), Some(rtc), Some(blas), Some(lt)) => Ok(Libs { hip, rtc, blas, lt }),
        _ => Err(format!("cannot load {}; {}", problems.join(", "), search.describe())),
    }
}

/// The resolved table of an opened library, or a note of what is wrong with it.
fn resolved<T>(
    lib: Option<libloading::Library>,
    resolve: fn(libloading::Library) -> Result<T, String>,
    name: &str,
    what: &str,
    problems: &mut Vec<String>,
) -> Option<T> {
    match lib.map(resolve) {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            problems.push(format!("{name}: {e}"));
            None
        }
        None => {
            problems.push(format!("{name} ({what})"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn struct_layouts_match_the_headers() {
        // hip_runtime_api.h (HIP 6.3) compiled with gcc on x86-64: sizeof 1472.
        assert_eq!(size_of::<hipDeviceProp_tR0600>(), 1472);
        assert_eq!(offset_of!(hipDeviceProp_tR0600, totalGlobalMem), 288);
        assert_eq!(offset_of!(hipDeviceProp_tR0600, warpSize), 308);
        assert_eq!(offset_of!(hipDeviceProp_tR0600, multiProcessorCount), 388);
        assert_eq!(offset_of!(hipDeviceProp_tR0600, l2CacheSize), 616);
        assert_eq!(offset_of!(hipDeviceProp_tR0600, sharedMemPerBlockOptin), 696);
        assert_eq!(offset_of!(hipDeviceProp_tR0600, reserved), 780);
        assert_eq!(offset_of!(hipDeviceProp_tR0600, gcnArchName), 1160);
        assert_eq!(offset_of!(hipDeviceProp_tR0600, maxSharedMemoryPerMultiProcessor), 1416);
        assert_eq!(offset_of!(hipDeviceProp_tR0600, arch), 1428);
        assert_eq!(offset_of!(hipDeviceProp_tR0600, asicRevision), 1468);
        // hipblaslt.h: uint8_t data[16] + size_t = 24; result = algo + size_t + status +
        // float + int[4] = 56.
        assert_eq!(size_of::<hipblasLtMatmulAlgo_t>(), 24);
        assert_eq!(offset_of!(hipblasLtMatmulAlgo_t, max_workspace_bytes), 16);
        assert_eq!(size_of::<hipblasLtMatmulHeuristicResult_t>(), 56);
        assert_eq!(offset_of!(hipblasLtMatmulHeuristicResult_t, workspaceSize), 24);
        assert_eq!(offset_of!(hipblasLtMatmulHeuristicResult_t, state), 32);
        assert_eq!(offset_of!(hipblasLtMatmulHeuristicResult_t, wavesCount), 36);
    }

    #[test]
    fn enum_values_match_the_headers() {
        // rocblas-types.h
        assert_eq!((rocblas_operation_none, rocblas_operation_transpose), (111, 112));
        assert_eq!((rocblas_datatype_f16_r, rocblas_datatype_f32_r, rocblas_datatype_bf16_r), (150, 151, 168));
        assert_eq!((rocblas_gemm_algo_standard, rocblas_gemm_algo_solution_index), (0, 1));
        assert_eq!(rocblas_gemm_flags_none, 0);
        assert_eq!(ROCBLAS_STATUS_NAMES[rocblas_status_invalid_value as usize], "rocblas_status_invalid_value");
        assert_eq!(ROCBLAS_STATUS_NAMES[15], "rocblas_status_arch_mismatch");
        // hipblas-common.h: the values that differ from cuBLAS.
        assert_eq!((HIPBLAS_OP_N, HIPBLAS_OP_T), (111, 112));
        assert_eq!(HIPBLAS_COMPUTE_32F, 2);
        assert_eq!(HIPBLAS_STATUS_NAMES[7], "HIPBLAS_STATUS_NOT_SUPPORTED");
        assert_eq!(HIPBLAS_STATUS_NAMES[11], "HIPBLAS_STATUS_UNKNOWN");
        // library_types.h
        assert_eq!((HIP_R_32F, HIP_R_16F, HIP_R_16BF), (0, 2, 14));
        // hipblaslt.h
        assert_eq!((HIPBLASLT_MATMUL_DESC_TRANSA, HIPBLASLT_MATMUL_DESC_TRANSB), (0, 1));
        assert_eq!(HIPBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, 1);
        assert_eq!((HIPBLASLT_MATRIX_LAYOUT_BATCH_COUNT, HIPBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET), (0, 1));
        // hip_runtime_api.h, driver_types.h, hiprtc.h
        assert_eq!((hipMemcpyHostToDevice, hipMemcpyDeviceToHost, hipMemcpyDeviceToDevice), (1, 2, 3));
        assert_eq!((hipStreamNonBlocking, hipEventDefault, hipStreamCaptureModeThreadLocal), (1, 0, 1));
        assert_eq!((HIP_LAUNCH_PARAM_BUFFER_POINTER, HIP_LAUNCH_PARAM_BUFFER_SIZE, HIP_LAUNCH_PARAM_END), (1, 2, 3));
        assert_eq!((hipSuccess, HIPRTC_SUCCESS), (0, 0));
    }

    /// Every library function the backend calls, as `(<table>.<symbol>)(` in its sources.
    fn called_symbols() -> Vec<String> {
        let sources = [
            include_str!("mod.rs"),
            include_str!("hip.rs"),
            include_str!("rocblas.rs"),
            include_str!("hipblaslt.rs"),
            include_str!("rtc.rs"),
            include_str!("custom.rs"),
            include_str!("candidates.rs"),
        ];
        let mut out = Vec::new();
        for src in sources {
            for (i, _) in src.match_indices('.') {
                let name: String = src[i + 1..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let after = &src[i + 1 + name.len()..];
                if (name.starts_with("hip") || name.starts_with("rocblas_")) && after.starts_with(")(") {
                    out.push(name);
                }
            }
        }
        out
    }

    #[test]
    fn function_tables_list_every_called_symbol_once() {
        let tables = [Hip::SYMBOLS, Hiprtc::SYMBOLS, Rocblas::SYMBOLS, Hipblaslt::SYMBOLS];
        let listed: Vec<&str> = tables.concat();
        let unique: std::collections::HashSet<&str> = listed.iter().copied().collect();
        assert_eq!(unique.len(), listed.len(), "a symbol is listed twice");
        let called = called_symbols();
        assert!(called.len() > 40, "the scan found too few calls: {called:?}");
        for c in &called {
            assert!(unique.contains(c.as_str()), "{c} is called but in no function table");
        }
        for s in &listed {
            assert!(called.iter().any(|c| c == s), "{s} is declared but never called");
        }
        // Each table's symbols belong to its library.
        assert!(Hip::SYMBOLS.iter().all(|s| s.starts_with("hip") && !s.starts_with("hiprtc") && !s.starts_with("hipblas")));
        assert!(Hiprtc::SYMBOLS.iter().all(|s| s.starts_with("hiprtc")));
        assert!(Rocblas::SYMBOLS.iter().all(|s| s.starts_with("rocblas_")));
        assert!(Hipblaslt::SYMBOLS.iter().all(|s| s.starts_with("hipblasLt")));
    }

    #[test]
    fn rocm_path_alone_is_searched_when_set() {
        let s = Search { dirs: vec![PathBuf::from("/x/lib")], system: false };
        assert_eq!(s.describe(), "searched /x/lib (ROCM_PATH)");
        let empty = tempfile::tempdir().unwrap();
        let s = Search { dirs: vec![empty.path().join("lib")], system: false };
        let e = load(&s).err().expect("nothing to load in an empty directory");
        for lib in ["libamdhip64.so", "libhiprtc.so", "librocblas.so", "libhipblaslt.so"] {
            assert!(e.contains(lib), "{e} should name {lib}");
        }
        assert!(!e.contains('\n'), "{e}");
        // Something that is a shared library but not ROCm: a missing symbol is named.
        let libc_dir = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64"]
            .into_iter()
            .map(PathBuf::from)
            .find(|d| d.join("libm.so.6").exists());
        if let Some(d) = libc_dir {
            let fake = tempfile::tempdir().unwrap();
            std::os::unix::fs::symlink(d.join("libm.so.6"), fake.path().join("librocblas.so")).unwrap();
            let s = Search { dirs: vec![fake.path().to_path_buf()], system: false };
            let e = load(&s).err().unwrap();
            assert!(e.contains("librocblas.so: symbol rocblas_create_handle missing"), "{e}");
        }
    }
}
