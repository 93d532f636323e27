package terraform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/usekarma/karma/shared/message"
)

// Workspace is everything needed to plan or apply one component.
type Workspace struct {
	// Root is the working directory of this component, e.g. .karma/work/<env>/<type>/<nickname>.
	// It holds the generated root module, .terraform, the state and saved plans. Created when
	// missing.
	Root string
	// ModuleDir is the path of the component's module, <modules_dir>/<type>.
	ModuleDir string
	// Confine, when set, is the folder every module terraform loads must be read from — the
	// commit's modules folder, materialized — unless a remote source downloaded it
	// (checkModuleSources); "" (a modules folder outside the repository): no such check.
	Confine string
	// Env, Type and Nickname name the component; Prefix is the Parameter Store prefix (the
	// module's iac_prefix; when empty the module's default applies).
	Env, Type, Nickname, Prefix string
	// Config is the resolved and interpolated config: a JSON object.
	Config json.RawMessage
	// Sensitive are the JSON pointers of Config's values that came from SecureString parameters:
	// they are passed to Terraform as sensitive variables and never written to a file here
	// (sensitive.go).
	Sensitive []string
	// Owner is the deployment a plan is made for, recorded next to it; Spent says when that
	// deployment will never apply it, and the plan is removed (prune.go). Zero, nil: a plan
	// is removed only once it is stale.
	Owner PlanOwner
	Spent SpentFunc
}

// ID is "<env>/<type>/<nickname>".
func (ws Workspace) ID() string { return ws.Env + "/" + ws.Type + "/" + ws.Nickname }

// PlanResult is a saved plan, ready for review.
type PlanResult struct {
	Summary message.PlanSummary
	// PlanFile is the absolute path of the saved plan.
	PlanFile string
	// PlanHash is the sha256 (hex) of the plan file: Apply applies only a file with this hash.
	PlanHash string
	// Resources are the resource changes for review (ResourceChanges); ResourcesTruncated says
	// they are not all listed.
	Resources          []message.ResourceChange
	ResourcesTruncated bool
	// HasChanges is terraform's verdict (plan -detailed-exitcode): resources or outputs change.
	// A plan may have changes with an all-zero Summary when only outputs change.
	HasChanges bool
}

// Outputs are the module's outputs, one top-level key each, as JSON.
type Outputs map[string]json.RawMessage

// Runner plans and applies components.
type Runner interface {
	Plan(ctx context.Context, ws Workspace) (PlanResult, error)
	Apply(ctx context.Context, ws Workspace, plan PlanResult) (Outputs, error)
}

// ErrPlanChanged is the cause of an Apply whose plan file no longer hashes to the reviewed
// PlanHash (or is gone), or was made from another state than the current one (stale.go):
// nothing is applied; planning again gives a plan that can be.
var ErrPlanChanged = errors.New("plan changed since review")

// ErrTerraformNotFound is returned by FindTerraform.
var ErrTerraformNotFound = errors.New("terraform not found on PATH: install terraform >= 1.5 (https://developer.hashicorp.com/terraform/install) or set KARMA_TERRAFORM")

// Steps reported in Error.Op.
const (
	OpPrepare = "prepare" // writing the root module
	OpLock    = "lock"    // waiting for Root/.karma.lock
	OpInit    = "init"
	OpPlan    = "plan"
	OpShow    = "show" // reading the saved plan as JSON
	OpVerify  = "verify"
	OpApply   = "apply"
	OpOutput  = "output"
)

// Error is a failed step of Plan or Apply.
type Error struct {
	Op        string // Op* constant
	Component string // "<env>/<type>/<nickname>"
	Err       error
	// Log is the tail (about 2 KB) of what terraform printed during the failed Plan or Apply.
	Log string
	// Diagnostics are the errors terraform itself reported (plan and apply), sensitive values
	// redacted. When present, Error shows them instead of the log.
	Diagnostics []Diagnostic
	// Applied (step apply) are the resource changes terraform completed before it failed — now
	// in the state, though the apply failed — as "<action> <address>", in terraform's order;
	// Errored those it reported failed. From its -json UI (apply_complete, apply_errored).
	Applied, Errored []string
	// unwaited: terraform-exec started terraform as the context ended and returned without
	// waiting for it or reading its output (started.go makes it rare): what it did is unknown.
	unwaited bool
}

func (e *Error) Error() string {
	msg := e.Err.Error()
	if e.Log != "" || len(e.Diagnostics) > 0 {
		// terraform-exec repeats the whole stderr after the exit status; the log has it.
		msg, _, _ = strings.Cut(msg, "\n")
	}
	if e.interrupted() && !strings.Contains(msg, "context") {
		// terraform-exec reports an interrupted command by its exit status only.
		msg = "interrupted (context cancelled or timed out): " + msg
	}
	switch {
	case len(e.Diagnostics) > 0:
		msg += "\n" + formatDiagnostics(e.Diagnostics)
	case e.Log != "":
		msg += "\n" + e.Log
	}
	if e.Op == OpApply {
		msg += "\n" + e.appliedText()
	}
	return fmt.Sprintf("terraform %s %s: %s", e.Op, e.Component, msg)
}

// appliedText says what an apply that failed changed before failing.
func (e *Error) appliedText() string {
	var b strings.Builder
	if e.unwaited {
		return "What it changed is not known: terraform was not waited for; its state is compared with the plan's before anything is applied again."
	}
	stop := "the failure"
	if e.interrupted() {
		stop = "the interruption"
	}
	if len(e.Applied) == 0 {
		b.WriteString("Completed before " + stop + ": no resource change.")
	} else {
		b.WriteString("Completed before " + stop + " (in the state now):")
		for _, c := range e.Applied {
			b.WriteString("\n  " + c)
		}
	}
	if len(e.Errored) > 0 {
		b.WriteString("\nFailed:")
		for _, c := range e.Errored {
			b.WriteString("\n  " + c)
		}
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether retrying cannot help: true for terraform failures (invalid config,
// failed apply, a changed plan, a missing binary), false when the context was cancelled or
// its deadline passed (the step was interrupted and may be tried again) and when the commit's
// modules folder was found changed on disk before terraform ran (ErrModulesChanged: it is
// written again from the commit when asked for again).
func (e *Error) Permanent() bool {
	if errors.Is(e.Err, ErrModulesChanged) && !errors.Is(e.Err, ErrPlanChanged) {
		return false
	}
	return !e.interrupted()
}

// interrupted reports whether the step ended because its context did.
func (e *Error) interrupted() bool {
	return errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded)
}

// tail keeps the last bytes written to it.
type tail struct {
	mu      sync.Mutex
	buf     []byte
	max     int
	trimmed bool
}

const logTail = 2048

func newTail() *tail { return &tail{max: logTail} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
		t.trimmed = true
	}
	return len(p), nil
}

// String is the last ~max bytes, starting at a line boundary when cut.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	cut := t.trimmed
	if len(b) > t.max {
		b = b[len(b)-t.max:]
		cut = true
	}
	s := string(b)
	if cut {
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
			s = s[i+1:]
		}
		s = "[…]\n" + s
	}
	return strings.TrimSpace(s)
}
