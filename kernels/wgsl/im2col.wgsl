// im2col (unfold) and col2im (fold) for 2-d convolution and pooling.
//
//   p[0]  elements of the output      p[1..5]   N, C, H, W of the image
//   p[5], p[6]   KH, KW (kernel)      p[7], p[8]  OH, OW (output positions)
//   p[9], p[10]  dilation             p[11], p[12] padding     p[13], p[14] stride
//   unfold: p[16..20] strides of the (N, C, H, W) input, p[20] its offset,
//           p[21] the value read in the padding (bits of C)
//   fold:   p[20] offset of the contiguous (N, C*KH*KW, OH*OW) columns
//
// The columns are laid out (N, C, KH, KW, OH, OW), i.e. (N, C*KH*KW, OH*OW).

@group(0) @binding(1) var<storage, read> src: array<TA>;
@group(0) @binding(2) var<storage, read_write> dst: array<TA>;

@compute @workgroup_size(WG)
fn unfold(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let ow = p[8];
    let oh = p[7];
    let kw = p[6];
    let kh = p[5];
    let c = p[2];
    var rem = i;
    let x = rem % ow; rem = rem / ow;
    let y = rem % oh; rem = rem / oh;
    let j = rem % kw; rem = rem / kw;
    let k = rem % kh; rem = rem / kh;
    let ch = rem % c;
    let n = rem / c;
    let hi = i32(y * p[13] + k * p[9]) - i32(p[11]);
    let wi = i32(x * p[14] + j * p[10]) - i32(p[12]);
    if (hi < 0 || wi < 0 || hi >= i32(p[3]) || wi >= i32(p[4])) {
        dst[i] = TA(bitcast<C>(p[21]));
        return;
    }
    let off = pi(20u) + i32(n) * pi(16u) + i32(ch) * pi(17u) + hi * pi(18u) + wi * pi(19u);
    dst[i] = src[off];
}

// One invocation per output pixel sums every (kernel row, kernel column) that lands
// on it, in the same order as the reference: deterministic, no atomics.
@compute @workgroup_size(WG)
fn fold(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let w = p[4];
    let h = p[3];
    let c = p[2];
    let kh = p[5];
    let kw = p[6];
    let oh = p[7];
    let ow = p[8];
    var rem = i;
    let xw = rem % w; rem = rem / w;
    let yh = rem % h; rem = rem / h;
    let ch = rem % c;
    let n = rem / c;
    var acc = C(0);
    for (var k = 0u; k < kh; k++) {
        let hp = i32(yh + p[11]) - i32(k * p[9]);
        if (hp < 0 || (u32(hp) % p[13]) != 0u) { continue; }
        let y = u32(hp) / p[13];
        if (y >= oh) { continue; }
        for (var j = 0u; j < kw; j++) {
            let wp = i32(xw + p[12]) - i32(j * p[10]);
            if (wp < 0 || (u32(wp) % p[14]) != 0u) { continue; }
            let x = u32(wp) / p[14];
            if (x >= ow) { continue; }
            let col = (((n * c + ch) * kh + k) * kw + j) * oh * ow + y * ow + x;
            acc += C(src[p[20] + col]);
        }
    }
    dst[i] = TA(acc);
}
