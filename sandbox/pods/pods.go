//go:build linux

// Package pods is podnsctl's runtime: it makes a pod's namespaces (held by
// a podns-sandbox process or pinned with bind mounts), attaches the network
// through CNI, runs containers inside, and tears all of it down again, also
// after crashes. Every change happens under the state store's lock.
package pods

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podns/podns/sandbox/cgroups"
	"github.com/podns/podns/sandbox/cni"
	"github.com/podns/podns/sandbox/holder"
	"github.com/podns/podns/sandbox/nsutil"
	"github.com/podns/podns/sandbox/spec"
	runtimeapi "github.com/podns/podns/sandbox/spec/cri"
	"github.com/podns/podns/sandbox/state"
)

// Ways to hold a pod's namespaces.
const (
	ModeHolder = "holder" // a podns-sandbox process
	ModePinned = "pinned" // bind mounts, no process
)

// ModeAnnotation lets a pod config choose its mode.
const ModeAnnotation = "podns.io/mode"

// Runtime holds podnsctl's settings.
type Runtime struct {
	Store       *state.Store
	CNIConfDir  string
	CNIBinDirs  []string
	CNICacheDir string
	// CNIInProcess are plugin types run in this process (cni.Client).
	CNIInProcess map[string]cni.InProcessPlugin
	// WarmCNIDel, when set, is called as a teardown begins whose CNI DEL
	// will run a plugin of CNIInProcess, so that plugin can start what its
	// DEL needs (the podns plugin's finisher) while the pod's processes
	// are stopped.
	WarmCNIDel  func()
	SandboxBin  string // the podns-sandbox binary
	StopTimeout time.Duration
}

func newID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// networkFile, in a pod's directory, is the network list it was attached
// with, so its DEL uses that list even if the conf dir has changed.
const networkFile = "network.conflist"

// podKinds are the namespaces a pod can own and pin, in set-up order.
var podKinds = []string{"net", "ipc", "uts"}

// PodKinds returns podKinds: what runp can start unsharing before it has
// read the pod's config (most pods own all three).
func PodKinds() []string { return slices.Clone(podKinds) }

// ownedKinds lists the namespaces this pod makes for itself.
func ownedKinds(p *state.Pod) []string {
	var out []string
	if p.Network == string(spec.ModePod) {
		out = append(out, "net", "uts") // host network means host UTS too
	}
	if p.IPC == string(spec.ModePod) {
		out = append(out, "ipc")
	}
	sort.Slice(out, func(i, j int) bool { return indexOf(podKinds, out[i]) < indexOf(podKinds, out[j]) })
	return out
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// CNIPluginPath is where the CNI bin dirs hold plugin (the first match).
func (r *Runtime) CNIPluginPath(plugin string) (string, error) { return r.cniClient().Find(plugin) }

func (r *Runtime) cniClient() *cni.Client {
	return &cni.Client{BinDirs: r.CNIBinDirs, CacheDir: r.CNICacheDir, InProcess: r.CNIInProcess}
}

// RunPod creates a pod and returns its record. On any failure everything
// made so far is undone. early, if set, is a thread that already unshared
// namespaces (podnsctl starts it before it reads the config); RunPod uses
// it when the pod owns exactly those, and retires it either way.
func (r *Runtime) RunPod(ctx context.Context, p *spec.Pod, mode string, early *nsutil.NSThread) (*state.Pod, error) {
	if early != nil {
		defer early.Close()
	}
	cfg := p.Config
	if mode == "" {
		mode = cfg.GetAnnotations()[ModeAnnotation]
	}
	if mode == "" {
		mode = ModeHolder
	}
	if mode != ModeHolder && mode != ModePinned {
		return nil, fmt.Errorf("unknown pod mode %q (want %s or %s)", mode, ModeHolder, ModePinned)
	}
	if mode == ModePinned && p.Namespaces.PID == spec.ModePod {
		return nil, fmt.Errorf("pinned mode cannot keep a shared PID namespace (pid POD) alive: a PID namespace needs its init process; use holder mode or pid CONTAINER")
	}
	var (
		confBytes []byte
		netList   *cni.List
	)
	if p.Namespaces.Network == spec.ModePod {
		var err error
		if confBytes, netList, err = cni.Load(r.CNIConfDir); err != nil {
			return nil, err
		}
	}

	unlock, err := r.Store.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()

	md := cfg.GetMetadata()
	pods, err := r.Store.Pods()
	if err != nil {
		return nil, err
	}
	for _, o := range pods {
		if o.Name == md.GetName() && o.Namespace == md.GetNamespace() && o.Attempt == md.GetAttempt() {
			return nil, fmt.Errorf("pod %s/%s attempt %d already exists (id %s)", md.GetNamespace(), md.GetName(), md.GetAttempt(), o.ID)
		}
	}
	// The record keeps the config as given: re-encoding the decoded one
	// would have encoding/json describe every CRI type in this process.
	raw := p.JSON // checked by spec.ParsePod
	if len(raw) == 0 {
		return nil, errors.New("pod config: no JSON (not from spec.ParsePod)")
	}
	pod := &state.Pod{
		ID: newID(), Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid(),
		Attempt: md.GetAttempt(), Phase: state.PhaseCreating, Mode: mode,
		Network: string(p.Namespaces.Network), PID: string(p.Namespaces.PID), IPC: string(p.Namespaces.IPC),
		Labels: cfg.GetLabels(), CgroupParent: cfg.GetLinux().GetCgroupParent(),
		CreatedAt: time.Now().UTC(), Config: raw, Pins: map[string]string{}, NSInodes: map[string]uint64{},
	}
	if p.Namespaces.Network == spec.ModePod {
		pod.Hostname = cfg.GetHostname()
		if pod.Hostname == "" {
			pod.Hostname = md.GetName()
		}
		pod.CNINetwork = netList.Name
	}
	// The record exists before any resource that outlives podnsctl, so a
	// crash at any later instant leaves something gc can find. The saved
	// network comes first and the record already owes a CNI DEL: a DEL
	// before (or without) an ADD is harmless, and it saves a record write
	// between the namespaces and the ADD. The namespaces are made and set
	// up meanwhile: until they are pinned they die with podnsctl's thread,
	// and setUpPod pins nothing before the record is saved.
	dir := r.Store.PodDir(pod.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pod dir: %w", err)
	}
	saved, setUp := make(chan error, 1), make(chan error, 1)
	ns := early
	if ns == nil || !slices.Equal(ns.Kinds(), ownedKinds(pod)) {
		ns = nsutil.StartUnshare(ownedKinds(pod))
	}
	go func() { setUp <- r.setUpPod(ctx, pod, p, netList, ns, saved) }()
	err = r.writePodFiles(pod, p, confBytes)
	if err == nil {
		pod.CNIAdded = netList != nil
		err = r.Store.SavePod(pod)
	}
	saved <- err
	if err != nil {
		<-setUp // made nothing that outlives it
		os.RemoveAll(dir)
		return nil, err
	}
	if err := <-setUp; err != nil {
		if terr := r.teardown(ctx, pod, true, false); terr != nil {
			return nil, fmt.Errorf("%w (and cleanup failed: %v)", err, terr)
		}
		os.RemoveAll(dir)
		return nil, err
	}
	return pod, nil
}

// writePodFiles writes the pod's network config (what its DEL will use)
// and resolv.conf.
func (r *Runtime) writePodFiles(pod *state.Pod, p *spec.Pod, confBytes []byte) error {
	dir := r.Store.PodDir(pod.ID)
	if confBytes != nil {
		if err := state.WriteFileAtomic(filepath.Join(dir, networkFile), confBytes, 0o600); err != nil {
			return err
		}
	}
	if dns := p.Config.GetDnsConfig(); dns != nil {
		path := filepath.Join(dir, "resolv.conf")
		if err := state.WriteFileAtomic(path, []byte(ResolvConf(dns.GetServers(), dns.GetSearches(), dns.GetOptions())), 0o644); err != nil {
			return fmt.Errorf("write resolv.conf: %w", err)
		}
		pod.ResolvConf = path
	}
	return nil
}

// setUpOptions are the steps done inside the pod's new namespaces, on
// podnsctl's thread that made them, before anything is pinned.
func setUpOptions(pod *state.Pod, p *spec.Pod) holder.Options {
	o := holder.Options{Loopback: pod.Network == string(spec.ModePod), ReadyFD: -1}
	if pod.Network == string(spec.ModePod) {
		o.Hostname = pod.Hostname
	}
	names := make([]string, 0, len(p.Sysctls))
	for k := range p.Sysctls {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		o.Sysctls = append(o.Sysctls, k+"="+p.Sysctls[k])
	}
	return o
}

// setUpPod makes the pod's namespaces on a thread of podnsctl, sets them up
// there (hostname, sysctls, lo) and pins them. The CNI ADD begins as soon as
// the network is pinned; in holder mode the holder is started from the same
// thread right after, so it is born in the pod's namespaces (and a new PID
// namespace for pid POD), and its start overlaps the ADD and the other pins.
// In pinned mode no process is started at all. Nothing is pinned before
// the pod's first record is saved (saved says whether it was); a crash
// after that and before the final save leaves a record in "creating": gc
// finds the holder by its command line and the pins by the mount table.
func (r *Runtime) setUpPod(ctx context.Context, pod *state.Pod, p *spec.Pod, netList *cni.List, ns *nsutil.NSThread, saved <-chan error) error {
	var (
		add      *adding
		h        *starting
		gotSaved bool
	)
	defer func() {
		// RunPod writes pod until it sends saved: touch it only after.
		if !gotSaved {
			<-saved
		}
		// The record owes a DEL from the start; a pod that fails before
		// its ADD began has nothing to delete.
		if add == nil {
			pod.CNIAdded = false
		}
	}()
	startHolder := func() error {
		if pod.Mode != ModeHolder || h != nil {
			return nil
		}
		var err error
		h, err = r.startHolder(pod)
		return err
	}
	o := setUpOptions(pod, p)
	recorded := false
	pins, err := ns.Finish(r.pinDir(pod.ID), func() error {
		_, err := holder.SetUp(o)
		rerr := <-saved
		gotSaved = true
		if err == nil {
			err = rerr
		}
		recorded = err == nil
		return err
	}, func(kind, path string) error {
		if kind == "net" && netList != nil {
			add = r.startAdd(ctx, pod, p, netList, path)
		}
		return startHolder()
	})
	for k, v := range pins {
		pod.Pins[k] = v
	}
	if !recorded {
		return err // nothing was pinned or started: the namespaces died with the thread
	}
	if err == nil {
		err = startHolder() // a pod that owns no namespace: its holder needs none
	}
	if h != nil {
		// From here the holder is ours to stop: teardown finds it by PID.
		pod.Holder = h.cmd.Process.Pid
		pod.HolderStart, _ = nsutil.ProcStart(pod.Holder)
	}
	if err == nil {
		err = r.recordInodes(pod)
	}
	if err == nil && h != nil && pod.PID == string(spec.ModePod) {
		var ino uint64
		if ino, err = nsutil.Inode(fmt.Sprintf("/proc/%d/ns/pid", pod.Holder)); err == nil {
			pod.NSInodes["pid"] = ino
		}
	}
	if err != nil {
		if h != nil {
			h.kill()
		}
		add.wait() // no DEL while the ADD still runs
		return err
	}
	var ready chan error
	if h != nil {
		ready = make(chan error, 1)
		go func() { ready <- h.wait() }()
	}
	err = add.wait()
	if h != nil {
		if err != nil {
			h.kill() // the pod is going away; do not wait for its holder
		}
		if rerr := <-ready; err == nil {
			err = rerr
		}
	}
	if err != nil {
		return err
	}
	pod.IPs = add.result()
	if h != nil {
		h.cmd.Process.Release()
	}
	pod.Phase = state.PhaseReady
	return r.Store.SavePod(pod)
}

// recordInodes notes the identity of every pinned namespace.
func (r *Runtime) recordInodes(pod *state.Pod) error {
	for kind, pin := range pod.Pins {
		ino, err := nsutil.Inode(pin)
		if err != nil {
			return err
		}
		pod.NSInodes[kind] = ino
	}
	return nil
}

// adding is a CNI ADD running in the background; a nil one has nothing to
// wait for.
type adding struct {
	done chan struct{}
	ips  []string
	err  error
}

// startAdd runs the CNI ADD for the network pinned at netns. Everything it
// reads from the pod is copied before it returns.
func (r *Runtime) startAdd(ctx context.Context, pod *state.Pod, p *spec.Pod, netList *cni.List, netns string) *adding {
	a := r.attachment(pod, p.Config)
	a.NetNS = netns
	ad := &adding{done: make(chan struct{})}
	go func() {
		defer close(ad.done)
		ad.ips, ad.err = r.cniClient().Add(ctx, netList, a)
	}()
	return ad
}

func (ad *adding) wait() error {
	if ad == nil {
		return nil
	}
	<-ad.done
	return ad.err
}

// result is the pod's addresses once wait returned nil.
func (ad *adding) result() []string {
	if ad == nil {
		return nil
	}
	return ad.ips
}

// starting is a holder that has been exec'd but may not be ready yet.
type starting struct {
	cmd    *exec.Cmd
	readyR *os.File
	log    string
}

// kill ends a holder that will not be used; wait still reports on it.
func (h *starting) kill() { h.cmd.Process.Kill() }

// wait blocks until the holder has applied hostname and sysctls and set
// its signals up (one byte on the readiness pipe), or has failed.
func (h *starting) wait() error {
	defer h.readyR.Close()
	h.readyR.SetReadDeadline(time.Now().Add(30 * time.Second))
	b := make([]byte, 1)
	n, _ := io.ReadFull(h.readyR, b)
	if n == 1 && b[0] == holder.ReadyByte {
		return nil
	}
	h.cmd.Process.Kill()
	werr := h.cmd.Wait()
	msg, _ := os.ReadFile(h.log)
	return fmt.Errorf("holder failed (%v): %s", werr, strings.TrimSpace(string(msg)))
}

// startHolder execs podns-sandbox in the calling thread's namespaces (and a
// new PID namespace for pid POD). It returns once the exec succeeded; wait
// says when the holder is ready.
func (r *Runtime) startHolder(pod *state.Pod) (*starting, error) {
	var flags uintptr
	if pod.PID == string(spec.ModePod) {
		flags |= unix.CLONE_NEWPID
	}
	args := []string{"hold", "--pod", pod.ID, "--ready-fd", "3"}
	logPath := filepath.Join(r.Store.PodDir(pod.ID), "holder.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(r.SandboxBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Setsid: true}
	cmd.Dir = "/" // hold no directory busy
	cmd.Env = holderEnv(os.Environ())
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		readyR.Close()
		return nil, fmt.Errorf("start holder %s: %w", r.SandboxBin, err)
	}
	return &starting{cmd: cmd, readyR: readyR, log: logPath}, nil
}

// holderEnv is env with the Go runtime told, before it starts, what the
// holder's lean() would set later: one P from the first instruction means
// fewer threads and per-P caches (about 0.1-0.2 MB less private memory).
func holderEnv(env []string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") && !strings.HasPrefix(kv, "GOGC=") {
			out = append(out, kv)
		}
	}
	return append(out, "GOMAXPROCS=1", "GOGC=20")
}

func (r *Runtime) attachment(pod *state.Pod, cfg *runtimeapi.PodSandboxConfig) *cni.Attachment {
	a := &cni.Attachment{PodID: pod.ID, Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, NetNS: pod.Pins["net"]}
	if cfg != nil {
		a.PortMappings = cfg.GetPortMappings()
		a.IngressBPS, a.EgressBPS, _ = spec.Bandwidth(cfg.GetAnnotations())
	}
	return a
}

// ResolvConf renders a resolv.conf from a CRI DNSConfig.
func ResolvConf(servers, searches, options []string) string {
	var b strings.Builder
	b.WriteString("# written by podnsctl from the pod's dns_config\n")
	if len(searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(searches, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.String()
}

// ResolvePod finds a pod by ID, unique ID prefix or name.
func (r *Runtime) ResolvePod(ref string) (*state.Pod, error) {
	if ref == "" {
		return nil, errors.New("no pod given")
	}
	if p, err := r.Store.LoadPod(ref); err == nil {
		return p, nil
	}
	pods, err := r.Store.Pods()
	if err != nil {
		return nil, err
	}
	var found []*state.Pod
	for _, p := range pods {
		if strings.HasPrefix(p.ID, ref) || p.Name == ref || p.Namespace+"/"+p.Name == ref {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("pod %q not found", ref)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("pod %q is ambiguous (%d pods match)", ref, len(found))
}

// HolderAlive says whether the pod's holder process is still there.
func HolderAlive(p *state.Pod) bool { return nsutil.Alive(p.Holder, p.HolderStart) }

// PodState is the pod's phase as seen now (a ready holder pod whose holder
// died is reported as "dead").
func PodState(p *state.Pod) string {
	if p.Phase == state.PhaseReady && p.Mode == ModeHolder && !HolderAlive(p) {
		return "dead"
	}
	return string(p.Phase)
}

// StopPod stops every container and the holder, detaches the network and
// unpins the namespaces. Stopping twice is fine.
func (r *Runtime) StopPod(ctx context.Context, ref string) (*state.Pod, error) {
	unlock, err := r.Store.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	pod, err := r.ResolvePod(ref)
	if err != nil {
		return nil, err
	}
	return pod, r.teardown(ctx, pod, false, true)
}

// RemovePod stops the pod if needed and deletes everything it had.
func (r *Runtime) RemovePod(ctx context.Context, ref string, force bool) (*state.Pod, error) {
	unlock, err := r.Store.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	pod, err := r.ResolvePod(ref)
	if err != nil {
		return nil, err
	}
	if err := r.teardown(ctx, pod, force, false); err != nil {
		return nil, err
	}
	return pod, r.removeState(pod)
}

func (r *Runtime) removeState(pod *state.Pod) error {
	if pod.CgroupParent != "" {
		if err := cgroups.Remove(podCgroup(pod)); err != nil {
			return err
		}
	}
	// The files a pod without containers has are removed by name, half
	// the syscalls of a tree walk; anything else there gets the walk.
	dir := r.Store.PodDir(pod.ID)
	for _, f := range []string{state.PodFile, networkFile, "resolv.conf", "holder.log", "ns"} {
		os.Remove(filepath.Join(dir, f))
	}
	if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove pod state: %w", err)
	}
	return nil
}

// teardown kills all of the pod's processes, runs CNI DEL and removes the
// pins. With force, a CNI failure is reported on stderr and ignored. The
// record is saved when keep is set or something failed (so a later rmp or
// gc knows what is left); a caller about to delete the state skips it.
func (r *Runtime) teardown(ctx context.Context, pod *state.Pod, force, keep bool) error {
	var (
		list    *cni.List
		listErr error
	)
	if pod.CNIAdded {
		list, listErr = r.savedNetwork(pod)
		r.warmDel(list)
	}
	// Containers get their grace periods side by side, as the kubelet does.
	ctrs, _ := r.Store.Containers(pod.ID)
	var wg sync.WaitGroup
	for _, c := range ctrs {
		wg.Add(1)
		go func(c *state.Container) {
			defer wg.Done()
			r.stopContainer(pod, c)
		}(c)
	}
	wg.Wait()
	// The CNI DEL runs while the holder and any stragglers are stopped: the
	// pinned netns outlives them, and neither side waits on the other.
	var (
		delErr  error
		delDone = make(chan struct{})
	)
	go func() {
		defer close(delDone)
		switch {
		case !pod.CNIAdded:
		case listErr != nil:
			delErr = listErr
		default:
			delErr = r.cniDel(ctx, pod, list, force)
		}
	}()
	// Whatever else is inside the pod's own namespaces goes too, found in
	// one pass over /proc while the holder stops (it is left to its
	// SIGTERM). Only namespaces still pinned count: a freed namespace's
	// inode number can be reused by someone else's. A ready pod that never
	// had a container (its containers/ directory comes with the first) has
	// had nothing of podnsctl's in its namespaces but the holder, so the
	// pass, which competes with the DEL for the CPU, is skipped for it.
	_, statErr := os.Stat(filepath.Join(r.Store.PodDir(pod.ID), "containers"))
	scan := statErr == nil || pod.Phase != state.PhaseReady
	pinned := map[string]uint64{}
	for kind, ino := range pod.NSInodes {
		if !scan || pod.Pins[kind] == "" {
			continue
		}
		if cur, err := nsutil.Inode(pod.Pins[kind]); err == nil && cur == ino {
			pinned[kind] = ino
		}
	}
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		for _, pid := range nsutil.PidsInAnyNS(pinned) {
			if pid != pod.Holder {
				nsutil.KillInAnyNS(pid, pinned)
			}
		}
	}()
	// The holder holds nothing that needs a graceful stop (containerd
	// SIGKILLs its pause container too): SIGKILL spares it waking its Go
	// runtime to handle a SIGTERM while the DEL wants the CPU.
	if pod.Holder != 0 {
		nsutil.Kill(pod.Holder, pod.HolderStart, 5*time.Second)
	}
	// A runp killed before it recorded the holder's PID left a holder only
	// its command line names. Once the holder is in the record (a failed
	// runp cleaning up after itself, or any pod past creating), the scan
	// of every command line is not needed.
	if pod.Phase == state.PhaseCreating && pod.Holder == 0 {
		for _, pid := range holdersOf(pod.ID) {
			stopProcess(pid, 0, r.StopTimeout)
		}
	}
	<-scanDone
	// A ready pod's pins are all in its record (they are made before its
	// last save) and a stopped pod has none: the DEL needs only the network
	// pin, so the others go while it runs. Any other pod (a crashed or
	// failed runp, an earlier teardown that failed) may have mounts the
	// record does not name: the mount table is read once the DEL is done.
	var errs []error
	unpin := func(m string) {
		if err := nsutil.Unpin(m); err != nil {
			errs = append(errs, err)
		}
	}
	known := pod.Phase == state.PhaseStopped || (pod.Phase == state.PhaseReady && len(pod.Pins) > 0)
	if known {
		for kind, pin := range pod.Pins {
			if kind != "net" {
				unpin(pin)
			}
		}
	}
	<-delDone
	if pod.CNIAdded {
		if err := delErr; err != nil {
			if !force {
				errs = append(errs, err)
			} else {
				fmt.Fprintf(os.Stderr, "podnsctl: warning: pod %s: %v (ignored: --force)\n", pod.ID, err)
				pod.CNIAdded = false
			}
		} else {
			pod.CNIAdded = false
		}
	}
	if known {
		if pin, ok := pod.Pins["net"]; ok {
			unpin(pin)
		}
	} else {
		mounts, err := nsutil.MountsUnder(r.Store.PodDir(pod.ID))
		if err != nil {
			errs = append(errs, err)
		}
		for _, m := range mounts {
			unpin(m)
		}
	}
	pod.Pins = map[string]string{}
	pod.Holder, pod.HolderStart = 0, 0
	if len(errs) == 0 {
		pod.Phase = state.PhaseStopped
	}
	if !keep && len(errs) == 0 {
		return nil
	}
	if _, err := os.Stat(r.Store.PodDir(pod.ID)); err == nil {
		if err := r.Store.SavePod(pod); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pinDir is where a pod's namespaces are pinned (nsutil.PinPath).
func (r *Runtime) pinDir(id string) string { return filepath.Join(r.Store.PodDir(id), "ns") }

// savedNetwork is the network list the pod was attached with.
func (r *Runtime) savedNetwork(pod *state.Pod) (*cni.List, error) {
	data, err := os.ReadFile(filepath.Join(r.Store.PodDir(pod.ID), networkFile))
	if err != nil {
		return nil, fmt.Errorf("pod %s: saved network config: %w", pod.ID, err)
	}
	return cni.Parse(data)
}

// warmDel calls WarmCNIDel when the pod's chain has a plugin run in this
// process, so what its DEL needs starts while the pod's processes stop.
func (r *Runtime) warmDel(list *cni.List) {
	if list == nil || r.WarmCNIDel == nil {
		return
	}
	for _, p := range list.Plugins {
		if r.CNIInProcess[p.Type] != nil {
			r.WarmCNIDel()
			return
		}
	}
}

// cniDel runs the pod's CNI DEL of list, its saved network. A failed DEL
// keeps the result cache for the DEL that retries it, except with force:
// the pod's record goes then, and no retry will come for the entry.
func (r *Runtime) cniDel(ctx context.Context, pod *state.Pod, list *cni.List, force bool) error {
	// The record holds the config podnsctl validated and wrote itself; the
	// DEL needs only what becomes capabilities.
	cfg := &runtimeapi.PodSandboxConfig{}
	if saved, err := runtimeapi.DecodePodSandboxConfig(pod.Config); err == nil {
		cfg.PortMappings, cfg.Annotations = saved.PortMappings, saved.Annotations
	}
	a := r.attachment(pod, cfg)
	if a.NetNS == "" && pod.Network == string(spec.ModePod) {
		// A runp that crashed before its last save pinned the network
		// here without recording it.
		a.NetNS = nsutil.PinPath(r.pinDir(pod.ID), "net")
	}
	if !nsutil.IsNSFS(a.NetNS) {
		a.NetNS = "" // gone: plugins must still release what they hold
	}
	c := r.cniClient()
	err := c.Del(ctx, list, a)
	if err != nil && force {
		c.Forget(list, a)
	}
	return err
}

// stopProcess sends SIGTERM, waits up to grace, then SIGKILL, and waits
// until the process is gone (or a zombie of someone else's).
func stopProcess(pid int, start uint64, grace time.Duration) {
	nsutil.Stop(pid, start, grace, 5*time.Second)
}

// waitGone waits up to d for the process to exit.
func waitGone(pid int, start uint64, d time.Duration) bool {
	return nsutil.WaitGone(pid, start, d)
}

func podCgroup(p *state.Pod) string {
	return filepath.Join(p.CgroupParent, "podns-"+p.ID)
}

// holdersOf finds podns-sandbox holders started for pod id.
func holdersOf(id string) []int {
	var out []int
	for _, pid := range nsutil.Pids() {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if len(args) < 4 || filepath.Base(args[0]) != "podns-sandbox" || args[1] != "hold" {
			continue
		}
		for i := 2; i+1 < len(args); i++ {
			if args[i] == "--pod" && args[i+1] == id {
				out = append(out, pid)
			}
		}
	}
	return out
}
