//go:build linux

package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podns/podns/sandbox/cgroups"
	"github.com/podns/podns/sandbox/container"
	"github.com/podns/podns/sandbox/nsutil"
	"github.com/podns/podns/sandbox/spec"
	runtimeapi "github.com/podns/podns/sandbox/spec/cri"
	"github.com/podns/podns/sandbox/state"
)

// RootfsAnnotation names a directory to pivot_root into (podnsctl has no
// images; a container config may point at an unpacked root filesystem).
const RootfsAnnotation = "podns.io/rootfs"

// CreateContainer records a container in a pod; StartContainer runs it.
func (r *Runtime) CreateContainer(ctx context.Context, podRef string, c *spec.Container) (*state.Pod, *state.Container, error) {
	unlock, err := r.Store.Lock()
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	pod, err := r.ResolvePod(podRef)
	if err != nil {
		return nil, nil, err
	}
	if st := PodState(pod); st != string(state.PhaseReady) {
		return nil, nil, fmt.Errorf("pod %s is %s, not ready", pod.ID, st)
	}
	cfg := c.Config
	md := cfg.GetMetadata()
	ctrs, err := r.Store.Containers(pod.ID)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range ctrs {
		if o.Name == md.GetName() && o.Attempt == md.GetAttempt() {
			return nil, nil, fmt.Errorf("container %s attempt %d already exists in pod %s (id %s)", o.Name, o.Attempt, pod.Name, o.ID)
		}
	}
	pidMode, target := spec.ContainerPIDMode(cfg)
	if pidMode == "" {
		pidMode = spec.Mode(pod.PID)
	}
	switch pidMode {
	case spec.ModePod:
		if pod.PID != string(spec.ModePod) {
			return nil, nil, fmt.Errorf("container asks for the pod's PID namespace but pod %s has pid %s", pod.Name, pod.PID)
		}
	case spec.ModeTarget:
		t := findContainer(ctrs, target)
		if t == nil {
			return nil, nil, fmt.Errorf("pid TARGET: container %q not found in pod %s", target, pod.Name)
		}
		if !nsutil.Alive(t.PID, t.PIDStart) {
			return nil, nil, fmt.Errorf("pid TARGET: container %q is not running", target)
		}
		pidMode = spec.Mode("TARGET:" + t.ID)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	ctr := &state.Container{
		ID: newID(), PodID: pod.ID, Name: md.GetName(), Attempt: md.GetAttempt(),
		Phase: state.PhaseCreated, PIDMode: string(pidMode), CreatedAt: time.Now().UTC(),
		Command: append(append([]string{}, cfg.GetCommand()...), cfg.GetArgs()...), Config: raw,
	}
	ctr.LogPath = filepath.Join(r.Store.ContainerDir(pod.ID, ctr.ID), "log")
	if pod.CgroupParent != "" {
		ctr.Cgroup = filepath.Join(podCgroup(pod), ctr.ID)
		res := cfg.GetLinux().GetResources()
		lim := cgroups.Limits{MemoryBytes: res.GetMemoryLimitInBytes(), CPUShares: res.GetCpuShares(), CPUQuota: res.GetCpuQuota(), CPUPeriod: res.GetCpuPeriod()}
		if err := cgroups.Create(ctr.Cgroup, lim); err != nil {
			return nil, nil, err
		}
	}
	if err := r.Store.SaveContainer(ctr); err != nil {
		if ctr.Cgroup != "" {
			cgroups.Remove(ctr.Cgroup)
		}
		os.RemoveAll(r.Store.ContainerDir(pod.ID, ctr.ID))
		return nil, nil, err
	}
	return pod, ctr, nil
}

func findContainer(ctrs []*state.Container, ref string) *state.Container {
	for _, c := range ctrs {
		if c.ID == ref || c.Name == ref {
			return c
		}
	}
	var hit *state.Container
	for _, c := range ctrs {
		if strings.HasPrefix(c.ID, ref) {
			if hit != nil {
				return nil
			}
			hit = c
		}
	}
	return hit
}

// ResolveContainer finds a container by POD/NAME, or by ID or unique prefix.
func (r *Runtime) ResolveContainer(ref string) (*state.Pod, *state.Container, error) {
	if podRef, name, ok := strings.Cut(ref, "/"); ok {
		// POD/CTR, where POD may itself be NAMESPACE/NAME.
		if i := strings.LastIndex(ref, "/"); i > len(podRef) {
			podRef, name = ref[:i], ref[i+1:]
		}
		pod, err := r.ResolvePod(podRef)
		if err != nil {
			return nil, nil, err
		}
		ctrs, err := r.Store.Containers(pod.ID)
		if err != nil {
			return nil, nil, err
		}
		if c := findContainer(ctrs, name); c != nil {
			return pod, c, nil
		}
		return nil, nil, fmt.Errorf("container %q not found in pod %s", name, pod.Name)
	}
	pods, err := r.Store.Pods()
	if err != nil {
		return nil, nil, err
	}
	var (
		hp *state.Pod
		hc *state.Container
	)
	for _, p := range pods {
		ctrs, _ := r.Store.Containers(p.ID)
		for _, c := range ctrs {
			if c.ID == ref || strings.HasPrefix(c.ID, ref) {
				if hc != nil {
					return nil, nil, fmt.Errorf("container %q is ambiguous", ref)
				}
				hp, hc = p, c
			}
		}
	}
	if hc == nil {
		return nil, nil, fmt.Errorf("container %q not found", ref)
	}
	return hp, hc, nil
}

// Stdio is where a foreground container's streams go.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// StartContainer starts a created container. Detached (stdio nil), its
// shim runs in its own session with output in the container's log and the
// returned cmd is nil. In the foreground the caller waits on the returned
// cmd (the shim), whose exit code is the container's.
func (r *Runtime) StartContainer(ctx context.Context, ref string, stdio *Stdio) (*state.Pod, *state.Container, *exec.Cmd, error) {
	unlock, err := r.Store.Lock()
	if err != nil {
		return nil, nil, nil, err
	}
	defer unlock()
	pod, ctr, err := r.ResolveContainer(ref)
	if err != nil {
		return nil, nil, nil, err
	}
	if ctr.Phase != state.PhaseCreated {
		return nil, nil, nil, fmt.Errorf("container %s is %s, not created", ctr.Name, ctr.Phase)
	}
	if st := PodState(pod); st != string(state.PhaseReady) {
		return nil, nil, nil, fmt.Errorf("pod %s is %s, not ready", pod.ID, st)
	}
	cfg := &runtimeapi.ContainerConfig{}
	if err := json.Unmarshal(ctr.Config, cfg); err != nil {
		return nil, nil, nil, fmt.Errorf("container %s: config: %w", ctr.ID, err)
	}
	sc, err := r.shimConfig(pod, ctr, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	shim, started, err := r.startShim(ctr, sc, stdio)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("start container %s: %w", ctr.Name, err)
	}
	ctr.Shim = shim.Process.Pid
	ctr.PID = started.PID
	ctr.PIDStart, _ = nsutil.ProcStart(ctr.PID)
	ctr.MntInode = nsutil.ProcNS(ctr.PID)["mnt"]
	ctr.Phase = state.PhaseRunning
	ctr.StartedAt = time.Now().UTC()
	if err := r.Store.SaveContainer(ctr); err != nil {
		shim.Process.Kill()
		unix.Kill(ctr.PID, unix.SIGKILL)
		return nil, nil, nil, err
	}
	if stdio == nil {
		shim.Process.Release()
		return pod, ctr, nil, nil
	}
	return pod, ctr, shim, nil
}

func (r *Runtime) shimConfig(pod *state.Pod, ctr *state.Container, cfg *runtimeapi.ContainerConfig) (*container.ShimConfig, error) {
	sc := &container.ShimConfig{
		ExitFile: r.Store.ExitFile(pod.ID, ctr.ID),
		Cgroup:   ctr.Cgroup,
	}
	for _, k := range podKinds {
		if p, ok := pod.Pins[k]; ok {
			sc.Joins = append(sc.Joins, nsutil.Join{Kind: k, Path: p})
		}
	}
	switch mode := ctr.PIDMode; {
	case mode == string(spec.ModePod):
		if !HolderAlive(pod) {
			return nil, fmt.Errorf("pod %s has no holder to share its PID namespace", pod.ID)
		}
		sc.Joins = append(sc.Joins, nsutil.Join{Kind: "pid", Path: fmt.Sprintf("/proc/%d/ns/pid", pod.Holder)})
	case strings.HasPrefix(mode, "TARGET:"):
		ctrs, _ := r.Store.Containers(pod.ID)
		t := findContainer(ctrs, strings.TrimPrefix(mode, "TARGET:"))
		if t == nil || !nsutil.Alive(t.PID, t.PIDStart) {
			return nil, fmt.Errorf("pid TARGET container is not running")
		}
		sc.Joins = append(sc.Joins, nsutil.Join{Kind: "pid", Path: fmt.Sprintf("/proc/%d/ns/pid", t.PID)})
	case mode == string(spec.ModeContainer):
		sc.NewPID = true
	}
	env := []string{}
	hasPath := false
	for _, kv := range cfg.GetEnvs() {
		env = append(env, kv.GetKey()+"="+string(kv.GetValue()))
		hasPath = hasPath || kv.GetKey() == "PATH"
	}
	if !hasPath {
		env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	}
	if pod.Hostname != "" {
		env = append(env, "HOSTNAME="+pod.Hostname)
	}
	sc.Init = container.InitConfig{
		Args:       ctr.Command,
		Env:        env,
		Cwd:        cfg.GetWorkingDir(),
		Rootfs:     cfg.GetAnnotations()[RootfsAnnotation],
		ResolvConf: pod.ResolvConf,
		CgroupNS:   true,
	}
	return sc, nil
}

func (r *Runtime) startShim(ctr *state.Container, sc *container.ShimConfig, stdio *Stdio) (*exec.Cmd, *container.Started, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer cfgR.Close()
	defer cfgW.Close()
	repR, repW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer repR.Close()
	defer repW.Close()
	cmd := exec.Command(r.SandboxBin, "shim")
	cmd.Dir = "/" // hold no directory busy
	cmd.ExtraFiles = []*os.File{cfgR, repW}
	if stdio == nil {
		logf, err := os.OpenFile(ctr.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, err
		}
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.In, stdio.Out, stdio.Err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start shim %s: %w", r.SandboxBin, err)
	}
	cfgR.Close()
	repW.Close()
	if err := json.NewEncoder(cfgW).Encode(sc); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, nil, err
	}
	cfgW.Close()
	var st container.Started
	if err := json.NewDecoder(repR).Decode(&st); err != nil || st.PID == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		if st.Error != "" {
			return nil, nil, errors.New(st.Error)
		}
		return nil, nil, fmt.Errorf("shim exited without starting the container")
	}
	return cmd, &st, nil
}

// ContainerStatus is a container's phase and exit code as seen now.
func (r *Runtime) ContainerStatus(c *state.Container) (state.Phase, *int) {
	if c.ExitCode != nil {
		return state.PhaseExited, c.ExitCode
	}
	if c.Phase == state.PhaseCreated || c.Phase == state.PhaseExited {
		return c.Phase, nil
	}
	if data, err := os.ReadFile(r.Store.ExitFile(c.PodID, c.ID)); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			return state.PhaseExited, &n
		}
	}
	if nsutil.Alive(c.PID, c.PIDStart) {
		return state.PhaseRunning, nil
	}
	return state.PhaseExited, nil
}

// stopContainer ends a container and everything it left behind.
func (r *Runtime) stopContainer(pod *state.Pod, c *state.Container) {
	if c.PID != 0 {
		stopProcess(c.PID, c.PIDStart, r.StopTimeout)
	}
	r.killLeftovers(c)
	if c.Shim != 0 {
		waitGone(c.Shim, 0, time.Second)
	}
	if c.Phase == state.PhaseRunning {
		phase, code := r.ContainerStatus(c)
		c.Phase, c.ExitCode = phase, code
	}
	if c.Cgroup != "" {
		cgroups.Remove(c.Cgroup)
	}
	r.Store.SaveContainer(c)
}

// killLeftovers kills processes still in the container: its cgroup and its
// mount namespace (every process of a container shares that one).
func (r *Runtime) killLeftovers(c *state.Container) {
	if c.Cgroup != "" {
		cgroups.Kill(c.Cgroup)
	}
	if c.MntInode == 0 {
		return
	}
	mnt := map[string]uint64{"mnt": c.MntInode}
	for i := 0; i < 50; i++ {
		var left []int
		for _, pid := range nsutil.PidsInNS("mnt", c.MntInode) {
			// A namespace inode can be reused once freed; only processes
			// started after the container can belong to it.
			if st, err := nsutil.ProcStart(pid); err == nil && st >= c.PIDStart {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return
		}
		for _, pid := range left {
			nsutil.KillInAnyNS(pid, mnt)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Exec runs a command in a running container: it joins the container's
// net, ipc, uts, pid and cgroup namespaces and its root directory. A Go
// process cannot setns into a mount namespace, so the mount view comes
// from chroot into /proc/PID/root (the container's / and its own /proc).
func (r *Runtime) Exec(ref string, args []string, stdio *Stdio) (int, error) {
	pod, ctr, err := r.ResolveContainer(ref)
	if err != nil {
		return -1, err
	}
	if phase, _ := r.ContainerStatus(ctr); phase != state.PhaseRunning {
		return -1, fmt.Errorf("container %s is %s, not running", ctr.Name, phase)
	}
	if len(args) == 0 {
		return -1, errors.New("no command given")
	}
	cfg := &runtimeapi.ContainerConfig{}
	json.Unmarshal(ctr.Config, cfg)
	var joins []nsutil.Join
	for _, k := range []string{"net", "ipc", "uts", "pid", "cgroup"} {
		joins = append(joins, nsutil.Join{Kind: k, Path: fmt.Sprintf("/proc/%d/ns/%s", ctr.PID, k)})
	}
	root := fmt.Sprintf("/proc/%d/root", ctr.PID)
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, kv := range cfg.GetEnvs() {
		env = append(env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	if pod.Hostname != "" {
		env = append(env, "HOSTNAME="+pod.Hostname)
	}
	path := args[0]
	if !strings.Contains(path, "/") {
		for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
			if st, err := os.Stat(filepath.Join(root, d, path)); err == nil && !st.IsDir() {
				path = filepath.Join(d, path)
				break
			}
		}
	}
	wd := cfg.GetWorkingDir()
	if wd == "" {
		wd = "/"
	}
	cmd := &exec.Cmd{Path: path, Args: args, Env: env, Dir: wd}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.In, stdio.Out, stdio.Err
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	if err := nsutil.StartIn(cmd, joins); err != nil {
		return -1, fmt.Errorf("exec in %s: %w", ctr.Name, err)
	}
	if ctr.Cgroup != "" {
		cgroups.Add(ctr.Cgroup, cmd.Process.Pid)
	}
	err = cmd.Wait()
	if code, ok := container.ExitStatus(err); ok {
		return code, nil
	}
	return -1, err
}
