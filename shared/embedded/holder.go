package embedded

// Holder: which process holds a lease (a received message, a claimed idempotency key), recorded
// with the lease so that a process that died — `kill -9`, a crash, a closed laptop lid that never
// reopened — can be told from one still at work: its leases are released at once instead of
// after their timeout (ReleaseAbandoned), and those of a live process can be reported (Leases).

import (
	"encoding/json"
	"errors"
	"os"
	"sync"
)

// Holder identifies a process: its host, its pid, and when it started (Start, an opaque
// platform-specific identity: the boot and the start time), so that a pid the system has since
// given to another process is not mistaken for the holder; and the pid namespace its pid is
// numbered in (NS, Linux), so that a process in another container that reports the same host
// name (a container on the host's network takes the host's name) is not looked up by a pid that
// means another process here, or none.
type Holder struct {
	Host  string `json:"host"`
	PID   int    `json:"pid"`
	Start string `json:"start,omitempty"` // "" when the platform cannot tell
	NS    string `json:"ns,omitempty"`    // "" when the platform has none (or an older binary)
}

// errNoProcess is what processStart returns for a pid no process (or only a zombie) has.
var errNoProcess = errors.New("no such process")

// errUnsupported is what processStart returns on platforms where processes cannot be inspected.
var errUnsupported = errors.New("process inspection not supported on this platform")

// ThisProcess is the Holder of the calling process.
func ThisProcess() Holder { return thisProcess() }

var thisProcess = sync.OnceValue(func() Holder {
	host, _ := os.Hostname()
	start, _ := processStart(os.Getpid())
	return Holder{Host: host, PID: os.Getpid(), Start: start, NS: pidNamespace()}
})

// Running reports whether the holder process still runs, and whether that is known at all: a
// process on another host or in another pid namespace, or on a platform that cannot inspect
// processes, is unknown (and its leases run out by themselves). A pid that exists but started
// at another time than the holder did is another process: the holder is gone.
func (h Holder) Running() (running, known bool) {
	self := ThisProcess()
	if h.PID <= 0 || h.Host != self.Host || h.NS != "" && h.NS != self.NS {
		return false, false
	}
	start, err := processStart(h.PID)
	switch {
	case errors.Is(err, errNoProcess):
		return false, true
	case err != nil:
		return false, false
	case h.Start != "" && start != "" && h.Start != start:
		return false, true // the pid was reused
	}
	return true, true
}

// thisHolder is ThisProcess, encoded once: every receive and claim records it.
var thisHolder = sync.OnceValue(func() string { return ThisProcess().encode() })

// encode is the holder as stored with a lease.
func (h Holder) encode() string {
	b, _ := json.Marshal(h) // cannot fail: strings and an int
	return string(b)
}

// decodeHolder reads a stored holder; "" (a lease taken before holders were recorded) or
// anything unreadable gives the zero Holder, whose state is unknown.
func decodeHolder(s string) Holder {
	var h Holder
	if s != "" {
		_ = json.Unmarshal([]byte(s), &h)
	}
	return h
}
