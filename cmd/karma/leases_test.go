package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/usekarma/karma/shared/terraform"
)

// helperEnv makes this test binary, re-executed, run the CLI with a Terraform whose plan never
// ends (TestHelperKarma): a `karma apply` caught mid-plan, to be killed.
const helperEnv = "KARMA_TEST_HELPER_ARGS"

// stuckPlan is a terraform.Runner whose Plan says so on stdout and then blocks forever.
type stuckPlan struct{ *terraform.Noop }

func (stuckPlan) Plan(ctx context.Context, ws terraform.Workspace) (terraform.PlanResult, error) {
	fmt.Println("KARMA-TEST planning", ws.ID())
	select {}
}

// TestHelperKarma is not a test: it is the child process of the tests below.
func TestHelperKarma(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("helper process (runs when " + helperEnv + " is set)")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		panic(err)
	}
	os.Exit(runWith(context.Background(), &globals{testRunner: stuckPlan{&terraform.Noop{}}}, args))
}

// smallRepo is a Git repository of three components, b after a, that terraform.Noop deploys (no
// runtime interpolation): app/a, app/b (depends on app/a), app/c.
func smallRepo(t *testing.T) (repo, state string) {
	t.Helper()
	repo = writeFiles(t, map[string]string{
		"iac/dev/app/a/config.json": `{"size":1}`,
		"iac/dev/app/b/config.json": `{"size":2,"karma":{"depends_on":["app/a"]}}`,
		"iac/dev/app/c/config.json": `{"size":3}`,
		"components/app/main.tf":    "variable \"config\" {}\n",
	})
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	commitAs(t, repo, "Ada", "three apps")
	return repo, t.TempDir()
}

// startStuckApply runs `karma apply --auto-approve` in a child process and returns it once its
// plan stage is stuck in Terraform (holding its messages and idempotency keys).
func startStuckApply(t *testing.T, repo, state string) *exec.Cmd {
	t.Helper()
	args, _ := json.Marshal([]string{"apply", "--auto-approve", "--repo", repo, "--state-dir", state})
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperKarma$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(args))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "KARMA-TEST planning") {
			go func() { // keep draining: the child may print more
				for lines.Scan() {
				}
			}()
			return cmd
		}
	}
	t.Fatalf("the child apply never reached terraform plan: %v", lines.Err())
	return nil
}

// After `kill -9` of a CLI apply mid-plan, the next `karma apply` releases at once what the dead
// process held (instead of waiting for the 10-minute visibility timeout), says so, and completes.
func TestApplyAfterKill9Resumes(t *testing.T) {
	repo, state := smallRepo(t)
	if code, out, errOut := karma(t, "ingest", "commit", "--auto-approve", "--repo", repo, "--state-dir", state); code != 0 {
		t.Fatalf("ingest: %d %s %s", code, out, errOut)
	}
	child := startStuckApply(t, repo, state)
	pid := child.Process.Pid
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	// A timeout far below the visibility timeout: only an immediate release lets it finish.
	code, out, errOut := karmaWith(t, &globals{testRunner: &terraform.Noop{}},
		"apply", "--auto-approve", "--timeout", "2m", "--repo", repo, "--state-dir", state)
	t.Logf("karma apply after kill -9:\n%s", out)
	if code != 0 {
		t.Fatalf("apply after kill -9: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "released what pid "+strconv.Itoa(pid)) || !strings.Contains(out, "no longer running") || !strings.Contains(out, "plan message") {
		t.Errorf("apply after kill -9 does not say what it released from pid %d:\n%s", pid, out)
	}
	if !strings.Contains(out, "3 applied, 0 skipped, 0 failed") {
		t.Errorf("apply after kill -9 did not deploy everything:\n%s", out)
	}
}

// While another live process holds messages, `karma plan` says what it waits for, held by which
// pid, until when.
func TestPlanSaysWhatItWaitsFor(t *testing.T) {
	repo, state := smallRepo(t)
	if code, out, errOut := karma(t, "ingest", "commit", "--auto-approve", "--repo", repo, "--state-dir", state); code != 0 {
		t.Fatalf("ingest: %d %s %s", code, out, errOut)
	}
	child := startStuckApply(t, repo, state)
	code, out, errOut := karmaWith(t, &globals{testRunner: &terraform.Noop{}}, "plan", "--timeout", "3s", "--repo", repo, "--state-dir", state)
	t.Logf("karma plan:\n%s%s", out, errOut)
	if code != 1 || !strings.Contains(errOut, "still busy") {
		t.Errorf("plan while another process holds the work: exit %d %s, want the timeout", code, errOut)
	}
	want := []string{"waiting: held by pid " + strconv.Itoa(child.Process.Pid), "which is running", "plan message", "until "}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("plan output does not say %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "released") {
		t.Errorf("something was released although its holder runs:\n%s", out)
	}
}
