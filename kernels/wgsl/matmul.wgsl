// Batched matrix product out[b] = A[b] @ B[b], tiled in workgroup memory.
//
// A workgroup of 16 x 16 invocations computes a (16*TM) x (16*TN) tile of the output;
// each invocation accumulates TM x TN outputs in registers (rows ty + 16 i, columns
// tx + 16 j, so neighbouring invocations read neighbouring words of the shared tiles).
// The K dimension is walked in slices of BK: the invocations first copy the A and B
// slices into workgroup memory together, then each multiplies from there, so every
// element loaded from the buffers is reused 16*TN (A) or 16*TM (B) times.
//
// Operands are read through strides, so transposed views (x @ w.T) and broadcast
// batch dimensions (stride 0) need no copy. The output is contiguous (batch, M, N).
//
//   p[0] M   p[1] N   p[2] K   p[3] batch count   p[4] batch ndim
//   p[5] offset of A   p[6] offset of B (i32)
//   p[8], p[9]   strides of A along m and k      p[10], p[11] strides of B along k and n
//   p[16..24] batch shape   p[24..32] A batch strides   p[32..40] B batch strides
// Grids larger than the dispatch limit are covered by the loops over tiles and batches.

@group(0) @binding(1) var<storage, read> A: array<TA>;
@group(0) @binding(2) var<storage, read> B: array<TA>;
@group(0) @binding(3) var<storage, read_write> out: array<TA>;

const BK: u32 = 16u;
const BM: u32 = 16u * TM;
const BN: u32 = 16u * TN;

var<workgroup> As: array<C, BK * BM>;  // As[k * BM + m]
var<workgroup> Bs: array<C, BK * BN>;  // Bs[k * BN + n]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let M = p[0];
    let N = p[1];
    let K = p[2];
    let tiles_m = (M + BM - 1u) / BM;
    let tiles_n = (N + BN - 1u) / BN;
    let tx = lid3.x;
    let ty = lid3.y;
    let sam = pi(8u);
    let sak = pi(9u);
    let sbk = pi(10u);
    let sbn = pi(11u);
    for (var bz = wid.z; bz < p[3]; bz += nwg.z) {
        let a_base = pi(5u) + offset_in(bz, p[4], 16u, 24u);
        let b_base = pi(6u) + offset_in(bz, p[4], 16u, 32u);
        for (var tm = wid.y; tm < tiles_m; tm += nwg.y) {
            for (var tn = wid.x; tn < tiles_n; tn += nwg.x) {
                let m0 = tm * BM;
                let n0 = tn * BN;
                var acc: array<C, TM * TN>;
                for (var i = 0u; i < TM * TN; i++) { acc[i] = C(0); }
                for (var k0 = 0u; k0 < K; k0 += BK) {
                    // cooperative loads of the A (BM x BK) and B (BK x BN) slices
                    for (var r = 0u; r < TM; r++) {
                        let e = lid + r * 256u;
                        let m = e / BK;
                        let k = e % BK;
                        var v = C(0);
                        if (m0 + m < M && k0 + k < K) {
                            v = C(A[a_base + i32(m0 + m) * sam + i32(k0 + k) * sak]);
                        }
                        As[k * BM + m] = v;
                    }
                    for (var r = 0u; r < TN; r++) {
                        let e = lid + r * 256u;
                        let k = e / BN;
                        let n = e % BN;
                        var v = C(0);
                        if (n0 + n < N && k0 + k < K) {
                            v = C(B[b_base + i32(k0 + k) * sbk + i32(n0 + n) * sbn]);
                        }
                        Bs[k * BN + n] = v;
                    }
                    workgroupBarrier();
                    for (var k = 0u; k < BK; k++) {
                        var a_reg: array<C, TM>;
                        for (var i = 0u; i < TM; i++) { a_reg[i] = As[k * BM + ty + 16u * i]; }
                        for (var j = 0u; j < TN; j++) {
                            let bv = Bs[k * BN + tx + 16u * j];
                            for (var i = 0u; i < TM; i++) { acc[i * TN + j] += a_reg[i] * bv; }
                        }
                    }
                    workgroupBarrier();
                }
                let o_base = bz * M * N;
                for (var i = 0u; i < TM; i++) {
                    let m = m0 + ty + 16u * i;
                    if (m >= M) { continue; }
                    for (var j = 0u; j < TN; j++) {
                        let n = n0 + tx + 16u * j;
                        if (n < N) { out[o_base + m * N + n] = TA(acc[i * TN + j]); }
                    }
                }
            }
        }
    }
}

// The same product without workgroup memory: each invocation reads its TM rows of A
// and TN columns of B straight from the buffers and keeps a TM x TN block in
// registers. Used on CPU adapters (lavapipe/llvmpipe), where a workgroup barrier is
// emulated by switching between invocations and costs more than the loads it saves.
@compute @workgroup_size(8, 8, 1)
fn main_regs(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let M = p[0];
    let N = p[1];
    let K = p[2];
    let sam = pi(8u);
    let sak = pi(9u);
    let sbk = pi(10u);
    let sbn = pi(11u);
    let rows = (M + TM - 1u) / TM;
    let cols = (N + TN - 1u) / TN;
    for (var bz = gid.z; bz < p[3]; bz += nwg.z) {
        let a_base = pi(5u) + offset_in(bz, p[4], 16u, 24u);
        let b_base = pi(6u) + offset_in(bz, p[4], 16u, 32u);
        for (var r = gid.y; r < rows; r += nwg.y * 8u) {
            for (var c = gid.x; c < cols; c += nwg.x * 8u) {
                let m0 = r * TM;
                let n0 = c * TN;
                var acc: array<C, TM * TN>;
                for (var i = 0u; i < TM * TN; i++) { acc[i] = C(0); }
                // rows / columns past the edge read row / column 0 and are never stored
                var a_row: array<i32, TM>;
                var b_col: array<i32, TN>;
                for (var i = 0u; i < TM; i++) { a_row[i] = a_base + i32(select(0u, m0 + i, m0 + i < M)) * sam; }
                for (var j = 0u; j < TN; j++) { b_col[j] = b_base + i32(select(0u, n0 + j, n0 + j < N)) * sbn; }
                for (var k = 0u; k < K; k++) {
                    var bv: array<C, TN>;
                    for (var j = 0u; j < TN; j++) { bv[j] = C(B[b_col[j] + i32(k) * sbk]); }
                    for (var i = 0u; i < TM; i++) {
                        let av = C(A[a_row[i] + i32(k) * sak]);
                        for (var j = 0u; j < TN; j++) { acc[i * TN + j] += av * bv[j]; }
                    }
                }
                let o_base = bz * M * N;
                for (var i = 0u; i < TM; i++) {
                    if (m0 + i >= M) { continue; }
                    for (var j = 0u; j < TN; j++) {
                        if (n0 + j < N) { out[o_base + (m0 + i) * N + n0 + j] = TA(acc[i * TN + j]); }
                    }
                }
            }
        }
    }
}
