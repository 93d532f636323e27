package embedded

import "sync"

// wakers holds each file's waker (guarded by perFileMu, writelock.go).
var wakers = map[string]*waker{}

// waker lets waiting Receives of one process sleep until a write may have made a message of
// their queue visible: channel returns a channel that signal closes. Each queue has its own, so
// a Send wakes only the receivers of the queues it wrote to.
//
// It also keeps a hint per queue: drained, when this process's last receive from the queue got
// fewer messages than it asked for and nothing was sent to it (by this process) since. A
// drained queue may still hold messages another process sent, or whose visibility expired:
// receivers that trust the hint poll for those.
type waker struct {
	mu      sync.Mutex
	chs     map[string]chan struct{}
	drained map[string]bool
}

// maybe reports whether queue name may have visible messages, as far as this process knows.
func (w *waker) maybe(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.drained[name]
}

// received records that a receive from name got got of the max messages it asked for; it runs
// holding the file's write lock, like every write, so it orders with the signals of sends.
func (w *waker) received(name string, got, max int) {
	if got >= max {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.drained[name] = true
}

func (w *waker) channel(name string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := w.chs[name]
	if ch == nil {
		ch = make(chan struct{})
		w.chs[name] = ch
	}
	return ch
}

func (w *waker) signal(names ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, name := range names {
		delete(w.drained, name)
		if ch := w.chs[name]; ch != nil {
			close(ch)
			delete(w.chs, name) // the next channel(name) makes a fresh one
		}
	}
}

func wakerFor(db *DB) *waker {
	perFileMu.Lock()
	defer perFileMu.Unlock()
	w := wakers[db.Path]
	if w == nil {
		w = &waker{chs: map[string]chan struct{}{}, drained: map[string]bool{}}
		wakers[db.Path] = w
	}
	return w
}
