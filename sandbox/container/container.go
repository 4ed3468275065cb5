//go:build linux

// Package container starts a container process inside a pod: the shim (a
// fresh podns-sandbox process that outlives podnsctl, waits for the
// container and records its exit status) and the re-exec'd init step that
// finishes the container's mount and cgroup namespaces and then execs the
// command. A new mount or PID namespace needs clone flags at fork, which is
// why both steps are separate processes.
package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/podns/podns/pkg/atomicfile"

	"golang.org/x/sys/unix"

	"github.com/podns/podns/sandbox/cgroups"
	"github.com/podns/podns/sandbox/holder"
	"github.com/podns/podns/sandbox/nsutil"
)

// InitConfig is what the init step needs to finish the container.
type InitConfig struct {
	Args       []string `json:"args"`
	Env        []string `json:"env"`
	Cwd        string   `json:"cwd,omitempty"`
	Rootfs     string   `json:"rootfs,omitempty"`
	ResolvConf string   `json:"resolvConf,omitempty"` // host file bound on /etc/resolv.conf
	CgroupNS   bool     `json:"cgroupNS"`
}

// ShimConfig is what a shim needs to start and watch one container.
type ShimConfig struct {
	Init     InitConfig    `json:"init"`
	Joins    []nsutil.Join `json:"joins"`
	NewPID   bool          `json:"newPID"`
	Cgroup   string        `json:"cgroup,omitempty"`
	ExitFile string        `json:"exitFile"`
}

// Started is the shim's report on its readiness pipe.
type Started struct {
	PID   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// Fds a shim and an init step are handed by their parent.
const (
	ConfigFD = 3
	ReportFD = 4
)

// Shim runs in a fresh podns-sandbox process: it starts the container, says
// so on ReportFD, forwards termination signals, waits, writes the exit
// status to ExitFile and exits with the container's code. It never returns.
func Shim() {
	var cfg ShimConfig
	if err := readJSON(ConfigFD, &cfg); err != nil {
		holder.Fail(holder.ExitInitConf, "shim config: %v", err)
	}
	report := os.NewFile(ReportFD, "report")
	fail := func(err error) {
		json.NewEncoder(report).Encode(Started{Error: err.Error()})
		report.Close()
		holder.Fail(holder.ExitShim, "%v", err)
	}
	// Catch signals before the child exists so none is lost.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)

	cmd, err := startInit(&cfg)
	if err != nil {
		fail(err)
	}
	json.NewEncoder(report).Encode(Started{PID: cmd.Process.Pid})
	report.Close()

	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	code := exitCode(cmd.Wait())
	if cfg.ExitFile != "" {
		if err := atomicfile.Write(cfg.ExitFile, []byte(strconv.Itoa(code)+"\n"), 0o600, false); err != nil {
			fmt.Fprintf(os.Stderr, "podns-sandbox shim: record exit status: %v\n", err)
		}
	}
	os.Exit(code)
}

// exitCode maps a Wait result to a shell-style status (128+signal), 255
// when the command could not be waited for at all.
func exitCode(err error) int {
	if code, ok := ExitStatus(err); ok {
		return code
	}
	return 255
}

// ExitStatus is the shell-style status (0, the exit code, or 128+signal)
// of a Wait result; ok is false when err is not about the process's exit.
func ExitStatus(err error) (code int, ok bool) {
	if err == nil {
		return 0, true
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, false
	}
	if ws, wok := ee.Sys().(syscall.WaitStatus); wok && ws.Signaled() {
		return 128 + int(ws.Signal()), true
	}
	return ee.ExitCode(), true
}

// startInit forks the init step inside the pod's namespaces, puts it in the
// container's cgroup, hands it its config and waits until it has exec'd the
// command (its report pipe closes on exec) or failed (it writes why).
func startInit(cfg *ShimConfig) (*exec.Cmd, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer cfgW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return nil, err
	}
	defer errR.Close()

	cmd := exec.Command("/proc/self/exe", "init")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{cfgR, errW}
	flags := uintptr(unix.CLONE_NEWNS)
	if cfg.NewPID {
		flags |= unix.CLONE_NEWPID
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags}
	err = nsutil.StartIn(cmd, cfg.Joins)
	cfgR.Close()
	errW.Close()
	if err != nil {
		return nil, fmt.Errorf("start container init: %w", err)
	}
	abort := func(e error) (*exec.Cmd, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, e
	}
	if cfg.Cgroup != "" {
		if err := cgroups.Add(cfg.Cgroup, cmd.Process.Pid); err != nil {
			return abort(err)
		}
	}
	if err := json.NewEncoder(cfgW).Encode(cfg.Init); err != nil {
		return abort(fmt.Errorf("send init config: %w", err))
	}
	cfgW.Close()
	msg, _ := io.ReadAll(errR)
	if len(msg) > 0 {
		cmd.Wait()
		return nil, errors.New(strings.TrimSpace(string(msg)))
	}
	return cmd, nil
}

// Init is the re-exec'd step: it runs on the locked main thread (see the
// podns-sandbox main), so unshare(CLONE_NEWCGROUP) and the final execve
// happen on the same thread. It never returns.
func Init() {
	errPipe := os.NewFile(ReportFD, "init-report")
	unix.CloseOnExec(ReportFD) // closes by itself when the command is exec'd
	fail := func(code int, err error) {
		fmt.Fprintf(errPipe, "%v\n", err)
		os.Exit(code)
	}
	var cfg InitConfig
	if err := readJSON(ConfigFD, &cfg); err != nil {
		fail(holder.ExitInitConf, fmt.Errorf("init config: %w", err))
	}
	if err := setup(&cfg); err != nil {
		fail(holder.ExitInitSetup, err)
	}
	path, err := lookPath(cfg.Args[0], cfg.Env)
	if err != nil {
		fail(holder.ExitInitExec, err)
	}
	err = unix.Exec(path, cfg.Args, cfg.Env)
	fail(holder.ExitInitExec, fmt.Errorf("exec %s: %w", cfg.Args[0], err))
}

func setup(cfg *InitConfig) error {
	if len(cfg.Args) == 0 {
		return errors.New("no command")
	}
	if cfg.CgroupNS {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("new cgroup namespace: %w", err)
		}
	}
	// Nothing this mount namespace does may reach the host's.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	// The copied mount table holds every namespace pin on the host (other
	// pods', ip netns's). Private copies would keep those namespaces alive
	// after their owners unmount them, so drop them all.
	if err := dropNamespacePins(); err != nil {
		return err
	}
	root := "/"
	if cfg.Rootfs != "" {
		root = cfg.Rootfs
		if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind rootfs %s: %w", root, err)
		}
		for _, d := range []string{"proc", "dev", "sys", "etc", "tmp"} {
			os.MkdirAll(filepath.Join(root, d), 0o755)
		}
		if err := unix.Mount("/dev", filepath.Join(root, "dev"), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind /dev: %w", err)
		}
		if err := unix.Mount("sysfs", filepath.Join(root, "sys"), "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount sysfs: %w", err)
		}
	}
	// A fresh /proc shows this container's PID namespace, not the host's.
	if err := unix.Mount("proc", filepath.Join(root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount proc: %w", err)
	}
	if cfg.ResolvConf != "" {
		dst := filepath.Join(root, "etc", "resolv.conf")
		if _, err := os.Stat(dst); err != nil {
			if f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				f.Close()
			}
		}
		if err := unix.Mount(cfg.ResolvConf, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind resolv.conf: %w", err)
		}
	}
	if cfg.Rootfs != "" {
		if err := pivot(root); err != nil {
			return err
		}
	}
	cwd := cfg.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := os.Chdir(cwd); err != nil {
		return fmt.Errorf("working dir: %w", err)
	}
	return nil
}

// dropNamespacePins unmounts every nsfs mount in this mount namespace: the
// copies of other pods' pins would keep their namespaces alive.
func dropNamespacePins() error {
	pins, err := nsutil.Mounts(func(_, fstype string) bool { return fstype == "nsfs" })
	if err != nil {
		return err
	}
	for _, mp := range pins {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("drop namespace pin %s: %w", mp, err)
		}
	}
	return nil
}

// pivot makes root the new / and detaches the old one.
func pivot(root string) error {
	old := filepath.Join(root, ".podns-oldroot")
	if err := os.MkdirAll(old, 0o700); err != nil {
		return err
	}
	if err := unix.PivotRoot(root, old); err != nil {
		return fmt.Errorf("pivot_root %s: %w", root, err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.podns-oldroot", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	os.Remove("/.podns-oldroot")
	return nil
}

// lookPath resolves cmd with the container's PATH, inside its root.
func lookPath(cmd string, env []string) (string, error) {
	if strings.Contains(cmd, "/") {
		return cmd, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, cmd)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in PATH %s", cmd, path)
}

func readJSON(fd int, v any) error {
	f := os.NewFile(uintptr(fd), "config")
	if f == nil {
		return fmt.Errorf("fd %d not open", fd)
	}
	defer f.Close()
	return json.NewDecoder(f).Decode(v)
}
