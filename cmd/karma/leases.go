package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
)

// leaseWatch is what `karma plan`, `karma apply` and `karma serve` do about work held by other
// processes on the state file (shared/embedded/leases.go): what a process known to be gone held
// (after `kill -9`, a crash) is released at once, and what the pipeline still has to wait for —
// held by a live process, or put back by this one after an error — is said once, with the holder
// and until when.
type leaseWatch struct {
	queue *embedded.Queue
	seen  *embedded.Seen
	w     io.Writer       // where to say it; nil says nothing
	told  map[string]bool // leases already reported
}

// leaseWatch watches the embedded queue's and idempotency store's leases; on AWS backends (SQS,
// DynamoDB) holders are not recorded and it does nothing.
func (st *stack) leaseWatch(w io.Writer) *leaseWatch {
	seen, _ := st.seen.(*embedded.Seen)
	if st.eq == nil || seen == nil {
		return nil
	}
	return &leaseWatch{queue: st.eq, seen: seen, w: w, told: map[string]bool{}}
}

// release releases the leases of processes known to be gone, and says which.
func (lw *leaseWatch) release(ctx context.Context) error {
	if lw == nil {
		return nil
	}
	msgs, err := lw.queue.ReleaseAbandoned(ctx)
	if err != nil {
		return err
	}
	claims, err := lw.seen.ReleaseAbandoned(ctx)
	if err != nil {
		return err
	}
	for _, g := range byHolder(append(msgs, claims...)) {
		lw.say("  released what pid %d on %s held (it is no longer running):\n", g.holder.PID, g.holder.Host)
		for _, l := range g.leases {
			lw.say("    %s\n", describeLease(l))
		}
	}
	return nil
}

// report says, once each, what the pipeline waits for: the leases of other processes, and, when
// this process handles nothing (idle), its own (messages put back after an error).
func (lw *leaseWatch) report(ctx context.Context, idle bool) error {
	if lw == nil {
		return nil
	}
	msgs, err := lw.queue.Leases(ctx)
	if err != nil {
		return err
	}
	claims, err := lw.seen.Leases(ctx)
	if err != nil {
		return err
	}
	self := embedded.ThisProcess()
	var fresh []embedded.Lease
	for _, l := range append(msgs, claims...) {
		id := l.Queue + "|" + l.MessageID + "|" + l.Key + "|" + l.Until.String()
		if !lw.told[id] && (l.Holder != self || idle) {
			lw.told[id] = true
			fresh = append(fresh, l)
		}
	}
	for _, g := range byHolder(fresh) {
		lw.say("  waiting: %s; each comes back by itself at the time shown:\n", describeHolder(g.holder))
		for _, l := range g.leases {
			lw.say("    %s until %s (in %s)\n", describeLease(l), l.Until.Local().Format("15:04:05"), time.Until(l.Until).Round(time.Second))
		}
	}
	return nil
}

func (lw *leaseWatch) say(format string, a ...any) {
	if lw.w != nil {
		fmt.Fprintf(lw.w, format, a...)
	}
}

type holderLeases struct {
	holder embedded.Holder
	leases []embedded.Lease
}

// byHolder groups leases by holder, in the order holders first appear.
func byHolder(leases []embedded.Lease) []holderLeases {
	var out []holderLeases
	index := map[embedded.Holder]int{}
	for _, l := range leases {
		i, ok := index[l.Holder]
		if !ok {
			i = len(out)
			index[l.Holder] = i
			out = append(out, holderLeases{holder: l.Holder})
		}
		out[i].leases = append(out[i].leases, l)
	}
	return out
}

// describeLease names a lease: "<stage> message <id> (<type>)" or "idempotency key <key>".
func describeLease(l embedded.Lease) string {
	if l.Key != "" {
		return "idempotency key " + l.Key
	}
	typ := "unreadable"
	if e, err := message.Parse(l.Body); err == nil {
		typ = e.Type
	}
	return fmt.Sprintf("%s message %s (%s)", l.Queue, l.MessageID, typ)
}

// describeHolder says who holds a lease and whether it runs.
func describeHolder(h embedded.Holder) string {
	if h == embedded.ThisProcess() {
		return "put back by this process after an error"
	}
	if h.PID == 0 {
		return "held by a process that did not record itself (an older Karma)"
	}
	running, known := h.Running()
	switch {
	case !known:
		return fmt.Sprintf("held by pid %d on %s (cannot tell from here whether it runs)", h.PID, h.Host)
	case running:
		return fmt.Sprintf("held by pid %d on %s, which is running", h.PID, h.Host)
	}
	return fmt.Sprintf("held by pid %d on %s, which is gone", h.PID, h.Host)
}
