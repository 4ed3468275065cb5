//go:build linux

// Package state keeps podnsctl's records: one directory per pod under the
// state root, each record written atomically (temp file renamed over it), and
// one lock file that serialises every change so concurrent calls are safe.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/podns/podns/pkg/atomicfile"
	"github.com/podns/podns/pkg/jsonobj"

	"golang.org/x/sys/unix"
)

// DefaultRoot is where podnsctl keeps state unless told otherwise.
const DefaultRoot = "/run/podns"

// Phase is where a pod or container is in its life.
type Phase string

const (
	PhaseCreating Phase = "creating" // being made; seen under the lock it means a crash
	PhaseReady    Phase = "ready"
	PhaseStopped  Phase = "stopped"
	PhaseCreated  Phase = "created" // container made, not started
	PhaseRunning  Phase = "running"
	PhaseExited   Phase = "exited"
)

// Pod is the record of one pod.
type Pod struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	UID       string            `json:"uid"`
	Attempt   uint32            `json:"attempt"`
	Phase     Phase             `json:"phase"`
	Mode      string            `json:"mode"` // holder or pinned
	Network   string            `json:"networkMode"`
	PID       string            `json:"pidMode"`
	IPC       string            `json:"ipcMode"`
	Hostname  string            `json:"hostname,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Holder is the holder process (0 in pinned mode or once stopped);
	// HolderStart is its start time in clock ticks, to spot PID reuse.
	Holder      int    `json:"holderPid,omitempty"`
	HolderStart uint64 `json:"holderStart,omitempty"`
	// Pins are the namespace files bind-mounted under the pod directory.
	Pins map[string]string `json:"pins,omitempty"`
	// NSInodes are the pod's own namespaces' inode numbers, by type.
	NSInodes     map[string]uint64 `json:"nsInodes,omitempty"`
	CNINetwork   string            `json:"cniNetwork,omitempty"`
	CNIAdded     bool              `json:"cniAdded,omitempty"`
	IPs          []string          `json:"ips,omitempty"`
	CgroupParent string            `json:"cgroupParent,omitempty"`
	ResolvConf   string            `json:"resolvConf,omitempty"`
	CreatedAt    time.Time         `json:"createdAt"`
	Config       json.RawMessage   `json:"config"`
}

// Container is the record of one container.
type Container struct {
	ID        string          `json:"id"`
	PodID     string          `json:"podId"`
	Name      string          `json:"name"`
	Attempt   uint32          `json:"attempt"`
	Phase     Phase           `json:"phase"`
	PIDMode   string          `json:"pidMode"`
	Shim      int             `json:"shimPid,omitempty"`
	PID       int             `json:"pid,omitempty"`
	PIDStart  uint64          `json:"pidStart,omitempty"`
	MntInode  uint64          `json:"mntInode,omitempty"`
	ExitCode  *int            `json:"exitCode,omitempty"`
	Cgroup    string          `json:"cgroup,omitempty"`
	LogPath   string          `json:"logPath,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
	StartedAt time.Time       `json:"startedAt,omitempty"`
	Command   []string        `json:"command"`
	Config    json.RawMessage `json:"config"`
}

// Store is the state root.
type Store struct{ Root string }

// Open makes the state root if needed.
func Open(root string) (*Store, error) {
	if root == "" {
		root = DefaultRoot
	}
	if err := os.MkdirAll(filepath.Join(root, "pods"), 0o700); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", root, err)
	}
	return &Store{Root: root}, nil
}

// Lock takes the store's exclusive lock; call the returned func to release.
// The kernel drops it if the process dies, so a crash never wedges the store.
func (s *Store) Lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.Root, "lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock state: %w", err)
	}
	return func() { f.Close() }, nil
}

// PodDir is the directory of pod id.
func (s *Store) PodDir(id string) string { return filepath.Join(s.Root, "pods", id) }

// PodFile is the name of a pod's record in its PodDir.
const PodFile = "pod.json"

// ContainerDir is the directory of a container of a pod.
func (s *Store) ContainerDir(podID, id string) string {
	return filepath.Join(s.PodDir(podID), "containers", id)
}

// WriteFileAtomic replaces path with data so readers see old or new, never
// part: a temp file renamed over path. It does not fsync: the records
// describe processes, mounts and namespaces that a machine crash destroys
// anyway (and /run is a tmpfs), while a killed podnsctl cannot leave a half
// file because the rename is atomic in the page cache. Two fsyncs per record
// were the largest part of runp on a disk-backed state dir.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(path, data, perm, false)
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(data, '\n'), 0o600)
}

// SavePod writes the pod's record, making its directory on first save.
func (s *Store) SavePod(p *Pod) error {
	// containers/ is made with the first container (Containers copes
	// without it): one directory less to make and remove per pod.
	if err := os.Mkdir(s.PodDir(p.ID), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("pod dir: %w", err)
	}
	data, err := p.encode()
	if err == nil {
		err = WriteFileAtomic(filepath.Join(s.PodDir(p.ID), PodFile), append(data, '\n'), 0o600)
	}
	if err != nil {
		return fmt.Errorf("save pod %s: %w", p.ID, err)
	}
	return nil
}

// ValidID says whether id can name a directory under the state root: one
// path element, not hidden, so no ID leads outside it.
func ValidID(id string) bool {
	return id != "" && !strings.ContainsAny(id, "/\x00") && !strings.HasPrefix(id, ".")
}

// LoadPod reads the record of pod id. A record whose ID is not its own
// directory's name was not written by podnsctl and is refused, so nothing
// acts on a path it names.
func (s *Store) LoadPod(id string) (*Pod, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("invalid pod ID %q", id)
	}
	data, err := os.ReadFile(filepath.Join(s.PodDir(id), PodFile))
	if err != nil {
		return nil, err
	}
	p := &Pod{}
	if err := p.decode(data); err != nil {
		return nil, fmt.Errorf("pod %s: corrupt record: %w", id, err)
	}
	if p.ID != id {
		return nil, fmt.Errorf("pod %s: corrupt record: it names pod %q", id, p.ID)
	}
	return p, nil
}

// decode reads a record as json.Unmarshal does, member by member
// (pkg/jsonobj): rmp and the other verbs read one record per process, and
// encoding/json describing the Pod type first was 0.1-0.2 ms of it.
func (p *Pod) decode(data []byte) error {
	o, err := jsonobj.Decode(data)
	if err != nil {
		return err
	}
	return o.GetAll(
		jsonobj.F("id", &p.ID), jsonobj.F("name", &p.Name), jsonobj.F("namespace", &p.Namespace),
		jsonobj.F("uid", &p.UID), jsonobj.F("attempt", &p.Attempt), jsonobj.F("phase", &p.Phase),
		jsonobj.F("mode", &p.Mode), jsonobj.F("networkMode", &p.Network), jsonobj.F("pidMode", &p.PID),
		jsonobj.F("ipcMode", &p.IPC), jsonobj.F("hostname", &p.Hostname), jsonobj.F("labels", &p.Labels),
		jsonobj.F("holderPid", &p.Holder), jsonobj.F("holderStart", &p.HolderStart), jsonobj.F("pins", &p.Pins),
		jsonobj.F("nsInodes", &p.NSInodes), jsonobj.F("cniNetwork", &p.CNINetwork), jsonobj.F("cniAdded", &p.CNIAdded),
		jsonobj.F("ips", &p.IPs), jsonobj.F("cgroupParent", &p.CgroupParent), jsonobj.F("resolvConf", &p.ResolvConf),
		jsonobj.F("createdAt", &p.CreatedAt), jsonobj.F("config", &p.Config),
	)
}

// PodIDs lists every pod directory, including half-made ones with no record.
func (s *Store) PodIDs() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.Root, "pods"))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Pods loads every pod with a readable record, oldest first.
func (s *Store) Pods() ([]*Pod, error) {
	ids, err := s.PodIDs()
	if err != nil {
		return nil, err
	}
	var pods []*Pod
	for _, id := range ids {
		p, err := s.LoadPod(id)
		if err != nil {
			continue
		}
		pods = append(pods, p)
	}
	sort.SliceStable(pods, func(i, j int) bool { return pods[i].CreatedAt.Before(pods[j].CreatedAt) })
	return pods, nil
}

// SaveContainer writes a container's record.
func (s *Store) SaveContainer(c *Container) error {
	dir := s.ContainerDir(c.PodID, c.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("container dir: %w", err)
	}
	if err := writeJSON(filepath.Join(dir, "container.json"), c); err != nil {
		return fmt.Errorf("save container %s: %w", c.ID, err)
	}
	return nil
}

// Containers loads every container of a pod, oldest first.
func (s *Store) Containers(podID string) ([]*Container, error) {
	ents, err := os.ReadDir(filepath.Join(s.PodDir(podID), "containers"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cs []*Container
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(s.ContainerDir(podID, e.Name()), "container.json"))
		if err != nil {
			continue
		}
		c := &Container{}
		// Like a pod's, a container's record must name its own directory.
		if json.Unmarshal(data, c) == nil && c.ID == e.Name() && c.PodID == podID {
			cs = append(cs, c)
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].CreatedAt.Before(cs[j].CreatedAt) })
	return cs, nil
}

// ExitFile is where a container's shim records its exit status.
func (s *Store) ExitFile(podID, id string) string {
	return filepath.Join(s.ContainerDir(podID, id), "exit")
}
