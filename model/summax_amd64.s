//go:build !purego

#include "textflag.h"

// func sumMax16AVX2(s *float64, n int) (sum, top float64)
//
// For n a positive multiple of 16: sixteen running sums and maxima in
// Y0-Y3 and Y4-Y7, lane k of them over s[i] for i ≡ k (mod 16); then the
// sums combined as sumMax16 does ((Y0+Y1)+(Y2+Y3), then (a0+a2)+(a1+a3)),
// so both give the same bits.
TEXT ·sumMax16AVX2(SB), NOSPLIT, $0-32
	MOVQ s+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	MOVQ $0xFFF0000000000000, AX // -Inf
	MOVQ AX, X4
	VBROADCASTSD X4, Y4
	VMOVAPD Y4, Y5
	VMOVAPD Y4, Y6
	VMOVAPD Y4, Y7

loop:
	VMOVUPD 0(SI), Y8
	VMOVUPD 32(SI), Y9
	VMOVUPD 64(SI), Y10
	VMOVUPD 96(SI), Y11
	VADDPD Y8, Y0, Y0
	VADDPD Y9, Y1, Y1
	VADDPD Y10, Y2, Y2
	VADDPD Y11, Y3, Y3
	VMAXPD Y8, Y4, Y4
	VMAXPD Y9, Y5, Y5
	VMAXPD Y10, Y6, Y6
	VMAXPD Y11, Y7, Y7
	ADDQ $128, SI
	SUBQ $16, CX
	JNZ loop

	VADDPD Y1, Y0, Y0
	VADDPD Y3, Y2, Y2
	VADDPD Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD X1, X0, X0
	VPERMILPD $1, X0, X1
	VADDSD X1, X0, X0
	VMOVSD X0, sum+16(FP)
	VMAXPD Y5, Y4, Y4
	VMAXPD Y7, Y6, Y6
	VMAXPD Y6, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VMAXPD X5, X4, X4
	VPERMILPD $1, X4, X5
	VMAXSD X5, X4, X4
	VMOVSD X4, top+24(FP)
	VZEROUPPER
	RET
