package embedded_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/queue"
)

// holderEnv makes this test binary, re-executed, the process that holds a message and a claim.
const holderEnv = "KARMA_TEST_HOLD_DB"

// TestHolderProcess is not a test: it is the child process of the tests below. It receives the
// message of queue "plan" with a 10-minute visibility and claims key "plan|k", as a pipeline
// stage does, says so on stdout, and blocks until it is killed.
func TestHolderProcess(t *testing.T) {
	path := os.Getenv(holderEnv)
	if path == "" {
		t.Skip("helper process for TestKilledHolderIsReleased (runs when " + holderEnv + " is set)")
	}
	ctx := context.Background()
	db, err := embedded.Open(path)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	q, err := embedded.NewQueue(ctx, db, embedded.QueueOptions{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	seen, err := embedded.NewSeen(ctx, db)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	ds, err := q.Receive(ctx, "plan", 1, 10*time.Minute, 0)
	if err != nil || len(ds) != 1 {
		fmt.Println("error: receive:", len(ds), err)
		os.Exit(1)
	}
	if ok, err := seen.Claim(ctx, "plan|k", 10*time.Minute); !ok || err != nil {
		fmt.Println("error: claim:", ok, err)
		os.Exit(1)
	}
	fmt.Println("holding", ds[0].MessageID)
	select {}
}

// startHolder starts the holder process on the file at path and waits until it holds.
func startHolder(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHolderProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), holderEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "holding ") {
		t.Fatalf("holder process: %q, %v", line, err)
	}
	return cmd
}

// A process that received a message and claimed its key, then died by SIGKILL, holds nothing:
// what it held is released at once instead of after the 10-minute visibility timeout. While it
// runs, its leases are reported with its pid and the time they run out, and nothing is released.
func TestKilledHolderIsReleased(t *testing.T) {
	ctx := t.Context()
	path := t.TempDir() + "/karma.db"
	db := queueTestDB(t, path)
	q := newTestQueue(t, db)
	seen, err := embedded.NewSeen(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Send(ctx, "plan", queue.Message{Body: []byte(`{"m":1}`)}); err != nil {
		t.Fatal(err)
	}
	holder := startHolder(t, path)
	pid := holder.Process.Pid

	leases, err := q.Leases(ctx)
	if err != nil || len(leases) != 1 || leases[0].Holder.PID != pid || leases[0].Queue != "plan" ||
		time.Until(leases[0].Until) < 5*time.Minute {
		t.Fatalf("Leases while the holder runs: %+v, %v; want one message of plan held by pid %d for ~10 minutes", leases, err, pid)
	}
	if claims, err := seen.Leases(ctx); err != nil || len(claims) != 1 || claims[0].Key != "plan|k" || claims[0].Holder.PID != pid {
		t.Fatalf("claims while the holder runs: %+v, %v", claims, err)
	}
	if running, known := leases[0].Holder.Running(); !running || !known {
		t.Errorf("holder pid %d: running %v known %v, want a known running process", pid, running, known)
	}
	if rel, err := q.ReleaseAbandoned(ctx); err != nil || len(rel) != 0 {
		t.Fatalf("ReleaseAbandoned with the holder alive: %+v, %v; want nothing released", rel, err)
	}
	if rel, err := seen.ReleaseAbandoned(ctx); err != nil || len(rel) != 0 {
		t.Fatalf("Seen.ReleaseAbandoned with the holder alive: %+v, %v; want nothing released", rel, err)
	}

	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = holder.Wait()
	if running, known := leases[0].Holder.Running(); running || !known {
		t.Errorf("killed holder: running %v known %v, want known gone", running, known)
	}
	rel, err := q.ReleaseAbandoned(ctx)
	if err != nil || len(rel) != 1 || rel[0].Holder.PID != pid {
		t.Fatalf("ReleaseAbandoned after SIGKILL: %+v, %v; want the message held by pid %d", rel, err, pid)
	}
	if rel, err := seen.ReleaseAbandoned(ctx); err != nil || len(rel) != 1 || rel[0].Key != "plan|k" {
		t.Fatalf("Seen.ReleaseAbandoned after SIGKILL: %+v, %v; want the claim of plan|k", rel, err)
	}
	ds, err := q.Receive(ctx, "plan", 1, time.Minute, 0) // no wait: visible now
	if err != nil || len(ds) != 1 || ds[0].ReceiveCount != 2 {
		t.Fatalf("Receive after the release: %+v, %v; want the message back (second receive)", ds, err)
	}
	if ok, err := seen.Claim(ctx, "plan|k", time.Minute); !ok || err != nil {
		t.Errorf("Claim after the release: %v, %v; want the key free", ok, err)
	}
	if leases, err := q.Leases(ctx); err != nil || len(leases) != 1 || leases[0].Holder != embedded.ThisProcess() {
		t.Errorf("Leases after receiving again: %+v, %v; want one, held by this process", leases, err)
	}
}

// A pid now used by another process is not mistaken for the holder: the process start differs.
func TestReusedPIDIsNotTheHolder(t *testing.T) {
	self := embedded.ThisProcess()
	if self.Start == "" {
		t.Skip("this platform cannot tell when a process started")
	}
	reused := self
	reused.Start = "another start"
	if running, known := reused.Running(); running || !known {
		t.Errorf("a holder with this pid but another start: running %v known %v, want known gone", running, known)
	}
	if running, known := self.Running(); !running || !known {
		t.Errorf("this process: running %v known %v", running, known)
	}
	elsewhere := self
	elsewhere.Host = self.Host + "-other"
	if _, known := elsewhere.Running(); known {
		t.Errorf("a holder on another host is known: nothing can be said about it")
	}
}

// A holder in another pid namespace — another container on the same file that reports the
// same host name, as one on the host's network does — is not looked up by its pid here, where
// the pid means another process or none: its state is unknown and its leases run out by
// themselves, instead of being released (and its Terraform run handed to a second worker)
// while it works.
func TestHolderInAnotherPIDNamespaceIsUnknown(t *testing.T) {
	self := embedded.ThisProcess()
	if self.NS == "" {
		t.Skip("this platform has no pid namespaces")
	}
	for name, h := range map[string]embedded.Holder{
		"no such pid here":           {Host: self.Host, PID: 1 << 23, Start: "its start", NS: "pid:[1]"},
		"its pid is another process": {Host: self.Host, PID: self.PID, Start: "its start", NS: "pid:[1]"},
	} {
		if running, known := h.Running(); running || known {
			t.Errorf("%s: running %v known %v, want unknown", name, running, known)
		}
	}
	// The same in this namespace, or recorded by a binary that kept no namespace: gone.
	for name, h := range map[string]embedded.Holder{
		"this namespace": {Host: self.Host, PID: 1 << 23, Start: "its start", NS: self.NS},
		"no namespace":   {Host: self.Host, PID: 1 << 23, Start: "its start"},
	} {
		if running, known := h.Running(); running || !known {
			t.Errorf("%s: running %v known %v, want known gone", name, running, known)
		}
	}
}

// A state file written before holders were recorded gains the columns; its leases have no
// holder and are left to run out.
func TestHolderColumnsMigrate(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	for _, stmt := range []string{
		`CREATE TABLE messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, queue TEXT NOT NULL, body BLOB NOT NULL,
			group_id TEXT NOT NULL DEFAULT '', dedup_id TEXT NOT NULL DEFAULT '', sent_at INTEGER NOT NULL,
			visible_at INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT NOT NULL DEFAULT '')`,
		`INSERT INTO messages (id, queue, body, sent_at, visible_at, receive_count) VALUES ('m1', 'plan', 'x', 0, 9e18, 1)`,
		`CREATE TABLE claims (key TEXT PRIMARY KEY, expires INTEGER NOT NULL)`,
		`INSERT INTO claims (key, expires) VALUES ('plan|k', 9e18)`,
	} {
		if _, err := db.SQL.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	q := newTestQueue(t, db)
	seen, err := embedded.NewSeen(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	leases, err := q.Leases(ctx)
	if err != nil || len(leases) != 1 || leases[0].Holder != (embedded.Holder{}) {
		t.Fatalf("Leases of an old file: %+v, %v; want one lease without holder", leases, err)
	}
	if rel, err := q.ReleaseAbandoned(ctx); err != nil || len(rel) != 0 {
		t.Errorf("ReleaseAbandoned: %+v, %v; a lease without holder is not known to be abandoned", rel, err)
	}
	if rel, err := seen.ReleaseAbandoned(ctx); err != nil || len(rel) != 0 {
		t.Errorf("Seen.ReleaseAbandoned: %+v, %v", rel, err)
	}
}
