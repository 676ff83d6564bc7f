//go:build !purego

#include "textflag.h"

// HSUM sums Y0's and Y1's sixteen values into X0's first (clobbers X1).
#define HSUM \
	VADDPS Y1, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS X1, X0, X0 \
	VMOVHLPS X0, X0, X1 \
	VADDPS X1, X0, X0 \
	VMOVSHDUP X0, X1 \
	VADDSS X1, X0, X0

// func dots64AVX2(e *float32, q *float32, out *float32, n int)
//
// out[i] = Σ_j e[64i+j]·q[j] for i < n: q's 64 values stay in Y8-Y15,
// each row is eight fused multiply-adds into two accumulators, then a
// horizontal sum.
TEXT ·dots64AVX2(SB), NOSPLIT, $0-32
	MOVQ e+0(FP), SI
	MOVQ q+8(FP), DX
	MOVQ out+16(FP), DI
	MOVQ n+24(FP), CX
	TESTQ CX, CX
	JE done
	VMOVUPS 0(DX), Y8
	VMOVUPS 32(DX), Y9
	VMOVUPS 64(DX), Y10
	VMOVUPS 96(DX), Y11
	VMOVUPS 128(DX), Y12
	VMOVUPS 160(DX), Y13
	VMOVUPS 192(DX), Y14
	VMOVUPS 224(DX), Y15

loop:
	VMULPS 0(SI), Y8, Y0
	VMULPS 32(SI), Y9, Y1
	VFMADD231PS 64(SI), Y10, Y0
	VFMADD231PS 96(SI), Y11, Y1
	VFMADD231PS 128(SI), Y12, Y0
	VFMADD231PS 160(SI), Y13, Y1
	VFMADD231PS 192(SI), Y14, Y0
	VFMADD231PS 224(SI), Y15, Y1
	HSUM
	VMOVSS X0, 0(DI)
	ADDQ $256, SI
	ADDQ $4, DI
	DECQ CX
	JNZ loop
	VZEROUPPER

done:
	RET

// func dotsAVX2(e *float32, q *float32, out *float32, n, w, stride int, mask *int32)
//
// out[i] = Σ_{j<w} e[stride·i+j]·q[j] for i < n: each row is w/8 fused
// multiply-adds of eight values, then the w%8 left (a masked load, which
// reads nothing past the row's last value), then a horizontal sum. mask
// holds eight int32, the first w%8 of them -1, the others 0.
TEXT ·dotsAVX2(SB), NOSPLIT, $0-56
	MOVQ e+0(FP), SI
	MOVQ q+8(FP), DX
	MOVQ out+16(FP), DI
	MOVQ n+24(FP), CX
	MOVQ w+32(FP), R9
	MOVQ stride+40(FP), BX
	MOVQ mask+48(FP), R8
	TESTQ CX, CX
	JE dotsdone
	VMOVUPS 0(R8), Y7
	MOVQ R9, R10
	ANDQ $7, R10 // the values left after the full chunks
	SHRQ $3, R9  // full chunks of eight
	SHLQ $2, BX  // a row's stride in bytes
	MOVQ R9, R11
	SHLQ $5, R11 // where the values left start, in bytes
	VXORPS Y6, Y6, Y6
	TESTQ R10, R10
	JE dotsrow
	VMASKMOVPS (DX)(R11*1), Y7, Y6 // q's values left

dotsrow:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	MOVQ SI, R12
	MOVQ DX, R13
	MOVQ R9, R14
	TESTQ R14, R14
	JE dotstail

dotschunk:
	VMOVUPS (R13), Y2
	VFMADD231PS (R12), Y2, Y0
	ADDQ $32, R12
	ADDQ $32, R13
	DECQ R14
	JNZ dotschunk

dotstail:
	TESTQ R10, R10
	JE dotssum
	VMASKMOVPS (R12), Y7, Y3
	VFMADD231PS Y3, Y6, Y1

dotssum:
	HSUM
	VMOVSS X0, 0(DI)
	ADDQ BX, SI
	ADDQ $4, DI
	DECQ CX
	JNZ dotsrow
	VZEROUPPER

dotsdone:
	RET
