// Shared by every spiraltorch_nb WGSL kernel.
//
// Binding 0 of every kernel is its parameter window: 128 u32 words written by the
// host for this one dispatch (bound with a dynamic offset into a per-batch arena).
// Most kernels use the "indexer" layout below to walk an n-d shape and find each
// operand's element through its own strides (broadcast dimensions have stride 0,
// flipped ones a negative stride), so views never need a copy before a kernel.
//
//   p[0]          number of elements (or rows, for row kernels)
//   p[1]          number of dimensions (<= MAX_DIMS)
//   p[2..6]       element offset of operands 0..3 (i32)
//   p[8..16]      shape
//   p[16..24]     strides of operand 0 (i32)   p[24..32] operand 1
//   p[32..40]     strides of operand 2         p[40..48] operand 3
//   p[48..]       kernel-specific values (EXTRA)
//
// Each kernel file is preceded by a generated prelude that declares its element
// types (aliases such as TA, TO, C), the workgroup size WG and compile-time choices.

@group(0) @binding(0) var<storage, read> p: array<u32>;

const MAX_DIMS: u32 = 8u;
const EXTRA: u32 = 48u;

fn pi(i: u32) -> i32 { return bitcast<i32>(p[i]); }
fn pf(i: u32) -> f32 { return bitcast<f32>(p[i]); }

// Index of this invocation when the grid is 2-D (dispatches over 65535 workgroups
// per dimension wrap into y) and workgroups are 1-D of WG invocations.
fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

// Index of this workgroup in a 2-D grid (row kernels: one workgroup per row).
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Element offsets of operands 0..3 for the row-major element i of the shape.
// LINEAR (compile-time, false unless the host says so) promises that every operand is
// dense with stride 1: the offsets are then offset + i, which lets compilers for CPU
// adapters use vector loads instead of gathers, and skips the divisions.
fn offsets(i: u32) -> vec4<i32> {
    var o = vec4<i32>(pi(2u), pi(3u), pi(4u), pi(5u));
    if (LINEAR) { return o + vec4<i32>(i32(i)); }
    var rem = i;
    let nd = p[1];
    for (var k = 0u; k < nd; k++) {
        let d = nd - 1u - k;
        let size = p[8u + d];
        let c = i32(rem % size);
        rem = rem / size;
        o += c * vec4<i32>(pi(16u + d), pi(24u + d), pi(32u + d), pi(40u + d));
    }
    return o;
}

// Offset of element i of a shape stored at p[shape_at..] with strides at p[stride_at..].
fn offset_in(i: u32, ndim: u32, shape_at: u32, stride_at: u32) -> i32 {
    var off = 0i;
    var rem = i;
    for (var k = 0u; k < ndim; k++) {
        let d = ndim - 1u - k;
        let size = p[shape_at + d];
        off += i32(rem % size) * pi(stride_at + d);
        rem = rem / size;
    }
    return off;
}

// IEEE tests by bit pattern: comparisons such as x != x may be folded away by
// optimizing shader compilers that assume no NaNs.
fn isnan_f(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn isinf_f(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }

// Non-finite values cannot be written as WGSL constants; build them at run time.
fn nan_f() -> f32 { return bitcast<f32>(p[0] | 0x7fc00000u); }
fn inf_f() -> f32 { return bitcast<f32>((p[0] & 0u) | 0x7f800000u); }
