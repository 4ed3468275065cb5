#include "textflag.h"

// func cloneHeir(stack, fd uintptr) (pid uintptr, errno uintptr)
//
// clone(CLONE_VM|SIGCHLD, stack): the child shares the caller's memory and
// runs only the system calls below, on stack, touching no memory at all.
// It closes every descriptor but fd (the read end of a pipe whose write
// end only the parent holds, close-on-exec), then reads fd: the read
// returns when the parent has exited or exec'd, and the child exits. Any
// failed call makes it exit at once. Every signal is blocked by the caller
// before the clone, so the child never runs a handler.
TEXT ·cloneHeir(SB),NOSPLIT|NOFRAME,$0-32
	MOVQ	stack+0(FP), SI
	MOVQ	fd+8(FP), R12
	MOVQ	$0x100, DI	// CLONE_VM
	ORQ	$17, DI		// SIGCHLD
	MOVQ	$0, DX
	MOVQ	$0, R10
	MOVQ	$0, R8
	MOVQ	$56, AX		// SYS_clone
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	MOVQ	$-1, pid+16(FP)
	NEGQ	AX
	MOVQ	AX, errno+24(FP)
	RET
ok:
	MOVQ	AX, pid+16(FP)
	MOVQ	$0, errno+24(FP)
	RET

child:
	CMPQ	R12, $0
	JEQ	above
	MOVQ	$0, DI
	MOVQ	R12, SI
	DECQ	SI
	MOVQ	$0, DX
	MOVQ	$436, AX	// SYS_close_range(0, fd-1, 0)
	SYSCALL
	CMPQ	AX, $0
	JNE	exit
above:
	MOVQ	R12, DI
	INCQ	DI
	MOVQ	$0xffffffff, SI
	MOVQ	$0, DX
	MOVQ	$436, AX	// SYS_close_range(fd+1, ~0U, 0)
	SYSCALL
	CMPQ	AX, $0
	JNE	exit
	MOVQ	R12, DI
	MOVQ	$0, SI		// no buffer: the read only ever sees EOF or fails
	MOVQ	$0, DX		// zero bytes would return at once, so ask for one
	INCQ	DX
	MOVQ	$0, AX		// SYS_read
	SYSCALL
exit:
	MOVQ	$113, DI	// ExitStatus
	MOVQ	$60, AX		// SYS_exit
	SYSCALL
	JMP	exit
