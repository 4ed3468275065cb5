//go:build linux

// Package holder is the pod's namespace holder: it sleeps, reaps every child
// when it is the PID namespace's init, exits 0 on SIGINT or SIGTERM and
// ignores the signals the Kubernetes pause binary ignores.
package holder

import (
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/containernetworking/plugins/pkg/utils/sysctl"

	"golang.org/x/sys/unix"

	"github.com/podns/podns/sandbox/nsutil"
)

// Exit codes, one per setup failure, so a runtime can tell them apart.
const (
	ExitOK        = 0
	ExitUsage     = 64 // bad arguments
	ExitHostname  = 65 // sethostname failed
	ExitSysctl    = 66 // a sysctl could not be written
	ExitReadyPipe = 67 // the readiness pipe could not be written
	ExitSignals   = 68 // signal set-up failed
	ExitInitConf  = 69 // container init: config unreadable
	ExitInitSetup = 70 // container init: namespaces, mounts or cgroup failed
	ExitInitExec  = 71 // container init: exec failed
	ExitShim      = 72 // container shim: could not start the container
	ExitLoopback  = 73 // lo could not be set up
)

// ReadyByte is written on the readiness pipe once signals are set up; the
// pipe is then closed. EOF without it means the holder failed.
const ReadyByte = 'R'

// Ignored are signals pause leaves at their default, which for PID 1 means
// ignored. The Go runtime installs handlers for them (SIGQUIT dumps
// goroutines and exits 2), which would defeat the kernel's PID 1 rule, so
// they are set to SIG_IGN explicitly.
var Ignored = []os.Signal{
	unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE,
	unix.SIGALRM, unix.SIGVTALRM, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGIO,
	unix.SIGPWR, unix.SIGWINCH, unix.SIGSTKFLT, unix.SIGSYS,
}

// Options are the pod set-up steps a holder does in its own namespaces
// before it reports ready.
type Options struct {
	Hostname string
	Sysctls  []string // name=value, dotted names
	Loopback bool     // set lo up (the pod's own network namespace)
	ReadyFD  int      // -1 for none
}

// Fail prints a one-line error and exits with code.
func Fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "podns-sandbox: "+format+"\n", args...)
	os.Exit(code)
}

// SetUp applies the pod's hostname, sysctls and loopback in the calling
// thread's namespaces. On failure it returns the exit code for the step.
func SetUp(o Options) (int, error) {
	if o.Hostname != "" {
		if err := unix.Sethostname([]byte(o.Hostname)); err != nil {
			return ExitHostname, fmt.Errorf("set hostname %q: %w", o.Hostname, err)
		}
	}
	for _, kv := range o.Sysctls {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || name == "" || strings.Contains(name, "..") {
			return ExitUsage, fmt.Errorf("bad sysctl %q (want name=value)", kv)
		}
		if _, err := sysctl.Sysctl(name, val); err != nil {
			return ExitSysctl, fmt.Errorf("sysctl %s=%s: %w", name, val, err)
		}
	}
	if o.Loopback {
		if err := nsutil.LoopbackUp(); err != nil {
			return ExitLoopback, err
		}
	}
	return ExitOK, nil
}

// Run sets the pod up, installs the signal rules, reports ready and then
// holds the namespaces until SIGINT or SIGTERM. It never returns.
func Run(o Options) {
	if code, err := SetUp(o); err != nil {
		Fail(code, "%v", err)
	}

	signal.Ignore(Ignored...)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGCHLD)

	if o.ReadyFD >= 0 {
		f := os.NewFile(uintptr(o.ReadyFD), "ready")
		if f == nil {
			Fail(ExitReadyPipe, "readiness fd %d is not open", o.ReadyFD)
		}
		if _, err := f.Write([]byte{ReadyByte}); err != nil {
			Fail(ExitReadyPipe, "readiness pipe: %v", err)
		}
		f.Close()
	}
	reap() // children may have exited before SIGCHLD was caught
	for s := range sigs {
		switch s {
		case unix.SIGCHLD:
			reap()
		default:
			os.Exit(ExitOK)
		}
	}
}

// reap collects every exited child without blocking. Only the pure holder
// does this: a Wait4(-1) anywhere else would steal os/exec's statuses.
func reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
