package embedded

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

var DebugWait sync.Map // caller -> *[2]atomic.Int64 (count, wait ns)
var DebugHold sync.Map

func debugWait(d time.Duration, m *sync.Map) {
	pc := make([]uintptr, 6)
	n := runtime.Callers(3, pc)
	fr := runtime.CallersFrames(pc[:n])
	name := ""
	for {
		f, more := fr.Next()
		if !contains(f.Function, "embedded.(*DB)") && !contains(f.Function, "embedded.(*Queue).byReceipt") {
			name = f.Function
			break
		}
		if !more {
			break
		}
	}
	v, _ := m.LoadOrStore(name, new([2]atomic.Int64))
	a := v.(*[2]atomic.Int64)
	a[0].Add(1)
	a[1].Add(int64(d))
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

var DebugCounters struct {
	Receives, ReceivedMsgs, EmptyReceives, AnyVisible, Settles, SettleGroups, SettleItems, Claims, ClaimKeys atomic.Int64
}
