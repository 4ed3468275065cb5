//go:build linux

package spawn

import (
	"syscall"
	"unsafe"
)

// Exit statuses of the finisher child. They are for tests; the parent
// watches the link, not the status.
const (
	ExitDeleted = 0 // deleted the link it was given (or found it gone)
	ExitFailed  = 1 // the delete failed
	ExitNoWork  = 2 // cancelled: the parent had nothing for it
)

// childEnv marks the finisher's environment (Start sets it), so that this
// package's init can tell it is the finisher before os, and so os.Args,
// is initialised.
const childEnv = "PODNS_FINISHER"

// MaxFds bounds the descriptors the parent hands over (pkg/finisher's
// Finish sends at most this many).
const MaxFds = 8

// isChild reports whether this process is a finisher Start made: the
// marker in its environment and Arg as its only argument.
func isChild() bool {
	if v, _ := syscall.Getenv(childEnv); v != "1" {
		return false
	}
	fd, err := syscall.Open("/proc/self/cmdline", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer syscall.Close(fd)
	// argv[0] is the path Start was given (at most PATH_MAX), then Arg.
	var b [4096 + len(Arg) + 2]byte
	n, err := syscall.Read(fd, b[:])
	if err != nil || n <= 0 {
		return false
	}
	args := splitNul(b[:n])
	return len(args) == 2 && args[1] == Arg
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	if start < len(b) {
		out = append(out, string(b[start:]))
	}
	return out
}

// Child is the finisher's side: read the index of the link to delete from
// fd 3 (none: exit), delete it, then read the descriptors the parent hands
// over once it is done with them, close them, and return the exit status.
// A parent that exits or cancels makes each read end at once. It runs from
// this package's init, before the netlink, nftables, CNI and bbolt
// packages initialise: the child needs none of them, and skipping their
// initialisation spares ~0.6 ms of CPU per DEL.
func Child() int {
	const sock = 3
	var msg [4]byte
	n, _, _, _, err := syscall.Recvmsg(sock, msg[:], nil, 0)
	if err != nil || n != 4 {
		return ExitNoWork
	}
	// The parent writes the index little-endian (pkg/finisher).
	idx := int32(uint32(msg[0]) | uint32(msg[1])<<8 | uint32(msg[2])<<16 | uint32(msg[3])<<24)
	if idx <= 0 {
		return ExitNoWork
	}
	status := ExitDeleted
	if DeleteLink(idx) != nil {
		status = ExitFailed
	}
	oob := make([]byte, syscall.CmsgSpace(4*MaxFds))
	if _, oobn, _, _, err := syscall.Recvmsg(sock, msg[:1], oob, 0); err == nil {
		if cmsgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, cm := range cmsgs {
				if fds, err := syscall.ParseUnixRights(&cm); err == nil {
					for _, fd := range fds {
						syscall.Close(fd)
					}
				}
			}
		}
	}
	return status
}

// delLinkReq is an RTM_DELLINK request: the header and the link's
// ifinfomsg, in host byte order as netlink wants.
type delLinkReq struct {
	hdr syscall.NlMsghdr
	ifi syscall.IfInfomsg
}

// DeleteLink deletes link idx in this process's netns with one
// RTM_DELLINK and waits for the kernel's answer; a link already gone is
// not an error. It is sent on a plain blocking socket: in the child it is
// the first thing done, before the runtime's netpoller exists. (Built here
// from syscall's types rather than by the netlink package, which this
// package, initialised before it, cannot import.)
func DeleteLink(idx int32) error {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	req := delLinkReq{
		hdr: syscall.NlMsghdr{Type: syscall.RTM_DELLINK, Flags: syscall.NLM_F_REQUEST | syscall.NLM_F_ACK, Seq: 1},
		ifi: syscall.IfInfomsg{Family: syscall.AF_UNSPEC, Index: idx},
	}
	req.hdr.Len = uint32(unsafe.Sizeof(req))
	b := (*[unsafe.Sizeof(req)]byte)(unsafe.Pointer(&req))[:]
	if err := syscall.Sendto(fd, b, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != req.hdr.Seq || m.Header.Type != syscall.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			switch errno := syscall.Errno(-*(*int32)(unsafe.Pointer(&m.Data[0]))); errno {
			case 0, syscall.ENODEV, syscall.ENOENT, syscall.ESRCH:
				return nil
			default:
				return errno
			}
		}
	}
}
