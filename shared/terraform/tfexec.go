package terraform

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"
)

// FindTerraform returns the terraform binary to use: $KARMA_TERRAFORM when set (a path, or a
// name looked up on PATH), else "terraform" on PATH. It fails with ErrTerraformNotFound.
func FindTerraform() (string, error) {
	if p := os.Getenv("KARMA_TERRAFORM"); p != "" {
		found, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("KARMA_TERRAFORM=%s: %v: %w", p, err, ErrTerraformNotFound)
		}
		return filepath.Abs(found)
	}
	found, err := exec.LookPath("terraform")
	if err != nil {
		return "", ErrTerraformNotFound
	}
	return filepath.Abs(found)
}

// TFExec is the Runner that drives the terraform binary through hashicorp/terraform-exec.
// It is safe for concurrent use; calls for one Root are serialised by the Root's lock.
type TFExec struct {
	execPath string
	// GracePeriod is how long terraform may take to stop after an interrupt (sent when the
	// context is cancelled) before it is killed; 0 means terraform-exec's default (60 s). A
	// context with a deadline interrupts terraform that long before it (stopInTime).
	GracePeriod time.Duration

	mu  sync.Mutex
	tfs map[string]*tfexec.Terraform // by Root; each remembers the binary's version
}

// NewTFExec returns a runner using the terraform binary at execPath (see FindTerraform).
func NewTFExec(execPath string) *TFExec {
	return &TFExec{execPath: execPath, tfs: map[string]*tfexec.Terraform{}}
}

var (
	_ Runner    = (*TFExec)(nil)
	_ Refresher = (*TFExec)(nil)
)

// defaultGrace is terraform-exec's wait after an interrupt before it kills terraform.
const defaultGrace = 60 * time.Second

// stopInTime returns ctx, ending early enough before its deadline — a Lambda's, which freezes
// the process at that instant, or a command's --timeout — that terraform, interrupted then, has
// time to stop and write its state before the deadline: the grace period before it (a quarter
// of the time left, when that is less). Interrupted at the deadline itself, terraform would be
// killed with the function before writing what it applied: resources made and in no state.
func (r *TFExec) stopInTime(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	grace := r.GracePeriod
	if grace <= 0 {
		grace = defaultGrace
	}
	if left := time.Until(dl) / 4; left < grace {
		grace = max(left, 0)
	}
	return context.WithDeadline(ctx, dl.Add(-grace))
}

// session is one Plan or Apply on a locked Root.
type session struct {
	ws     Workspace
	tf     *tfexec.Terraform
	log    *tail
	ui     *uiLog     // terraform's -json output (plan, apply): its diagnostics, its text to log
	watch  startWatch // the running command's first output (started.go)
	redact redactor   // the workspace's sensitive values, scrubbed from what an Error keeps
}

func (s *session) fail(op string, err error) error {
	unwaited := false
	if ctxErr := endedWithoutError(err); ctxErr != nil {
		// terraform-exec's error for a command started as its context ended, which it did not
		// wait for: a context error wrapping no error, whose Error method would panic.
		err = fmt.Errorf("terraform was started as the context ended: %w", ctxErr)
		unwaited = true
	}
	if msg := s.redact.apply(err.Error()); msg != err.Error() {
		err = &redactedError{err: err, msg: msg}
	}
	e := &Error{Op: op, Component: s.ws.ID(), Err: err, Log: s.redact.apply(s.log.String()),
		Diagnostics: s.redact.diagnostics(s.ui.diagnostics()), unwaited: unwaited}
	if op == OpApply {
		e.Applied, e.Errored = s.ui.changes()
	}
	return e
}

// endedWithoutError returns the context's error when err is terraform-exec's error for a command
// whose context ended while the command reported no error of its own (its error wraps nil), else
// nil.
func endedWithoutError(err error) error {
	if err == nil || err == context.Canceled || err == context.DeadlineExceeded || errors.Unwrap(err) != nil {
		return nil
	}
	for _, c := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, c) {
			return c
		}
	}
	return nil
}

// appliedThenInterrupted reports whether terraform completed the apply it reported on ui before
// the context ended: it said so (change_summary of the apply) and exited with status 0 — what
// terraform-exec reports as the context's error alone (exec.Cmd.Wait does, for a command that
// succeeds once cancelled), never an exit status.
func appliedThenInterrupted(err error, ui *uiLog) bool {
	var exit *exec.ExitError
	return (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && !errors.As(err, &exit) && ui.completed()
}

// redactedError is an error whose message had sensitive values scrubbed; errors.Is and As still
// see the original.
type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// begin normalizes the workspace, locks its Root and sets up terraform with a fresh log.
func (r *TFExec) begin(ctx context.Context, ws Workspace) (*session, func(), error) {
	nws, err := normalize(ws)
	if err != nil {
		return nil, nil, &Error{Op: OpPrepare, Component: ws.ID(), Err: err}
	}
	log := newTail()
	redact := newRedactor(nws)
	s := &session{ws: nws, log: log, ui: newUILog(log, redact), redact: redact}
	if err := os.MkdirAll(nws.Root, 0o755); err != nil {
		return nil, nil, s.fail(OpPrepare, err)
	}
	unlock, err := lockRoot(ctx, nws.Root)
	if err != nil {
		return nil, nil, s.fail(OpLock, err)
	}
	if err := claimRoot(nws.Root, nws.ID()); err != nil {
		unlock()
		return nil, nil, s.fail(OpPrepare, err)
	}
	tf, fresh, err := r.terraform(nws.Root)
	if err != nil {
		unlock()
		return nil, nil, s.fail(OpPrepare, err)
	}
	if fresh {
		// Learn the binary's version now (terraform-exec checks it before some commands), so
		// that `terraform version -json` does not end up in the log.
		tf.SetStdout(s.watched(io.Discard))
		tf.SetStderr(s.watched(s.log))
		if err := s.command(ctx, func(ctx context.Context) error { _, _, err := tf.Version(ctx, false); return err }); err != nil {
			unlock()
			r.forget(nws.Root)
			return nil, nil, s.fail(OpPrepare, err)
		}
	}
	tf.SetStdout(s.watched(s.log))
	tf.SetStderr(s.watched(s.log))
	s.tf = tf
	return s, unlock, nil
}

// terraform returns the Root's terraform-exec handle (fresh: just made) with the environment
// set. Called with the Root locked.
func (r *TFExec) terraform(root string) (tf *tfexec.Terraform, fresh bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tfs == nil {
		r.tfs = map[string]*tfexec.Terraform{}
	}
	tf, ok := r.tfs[root]
	if !ok {
		if tf, err = tfexec.NewTerraform(root, r.execPath); err != nil {
			return nil, false, err
		}
		if r.GracePeriod > 0 {
			if err := tf.SetWaitDelay(r.GracePeriod); err != nil {
				return nil, false, err
			}
		}
		r.tfs[root] = tf
		fresh = true
	}
	// The environment is read on every call; terraform-exec itself forces TF_IN_AUTOMATION=1,
	// -input=false and no TF_LOG. TF_CLI_ARGS*, TF_VAR_* and TF_WORKSPACE are dropped (they
	// would change what is planned), and so is TF_DATA_DIR (.terraform must stay in Root).
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	env = tfexec.CleanEnv(env)
	delete(env, "TF_DATA_DIR")
	env["CHECKPOINT_DISABLE"] = "1"
	if err := tf.SetEnv(env); err != nil {
		return nil, false, err
	}
	return tf, fresh, nil
}

func (r *TFExec) forget(root string) {
	r.mu.Lock()
	delete(r.tfs, root)
	r.mu.Unlock()
}

// Plan prepares Root, runs init when needed and `terraform plan -out`, and summarises the
// saved plan. The plan file is Root/plans/<first 16 hex of its sha256>.tfplan.
func (r *TFExec) Plan(ctx context.Context, ws Workspace) (PlanResult, error) {
	ctx, cancel := r.stopInTime(ctx)
	defer cancel()
	s, unlock, err := r.begin(ctx, ws)
	if err != nil {
		return PlanResult{}, err
	}
	defer unlock()
	s.prunePlans(ctx, "")
	if err := emptiedState(s.ws.Root); err != nil {
		return PlanResult{}, s.fail(OpPrepare, err)
	}
	// Terraform reads the workspace's own copy of the commit's modules, checked to be the tree.
	if s.ws, err = commitModules(s.ws, false); err != nil {
		return PlanResult{}, s.fail(OpPrepare, err)
	}
	if _, err := Prepare(s.ws); err != nil {
		return PlanResult{}, s.fail(OpPrepare, err)
	}
	if err := s.init(ctx); err != nil {
		return PlanResult{}, err
	}

	// Saved plans hold the values of the variables, sensitive ones included: owner only.
	dir := filepath.Join(s.ws.Root, planDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return PlanResult{}, s.fail(OpPlan, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return PlanResult{}, s.fail(OpPlan, err)
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".new-%d.tfplan", time.Now().UnixNano()))
	defer os.Remove(tmp) // no-op once renamed
	opts, cleanup, err := s.varFile()
	if err != nil {
		return PlanResult{}, s.fail(OpPlan, err)
	}
	// What terraform reads of config.json while planning: Apply puts it back (planConfigFile).
	config, err := os.ReadFile(filepath.Join(s.ws.Root, configFile))
	if err != nil {
		cleanup()
		return PlanResult{}, s.fail(OpPlan, err)
	}
	// The lock file of the providers terraform plans with (no record: none), read before
	// anything a module runs while planning could rewrite it: Apply applies only with the same.
	lock, err := rootLock(s.ws.Root)
	if err != nil {
		cleanup()
		return PlanResult{}, s.fail(OpPlan, err)
	}
	var changes bool
	err = s.command(ctx, func(ctx context.Context) (err error) {
		changes, err = s.tf.PlanJSON(ctx, s.watched(s.ui), append(opts, tfexec.Out(tmp))...)
		return err
	})
	cleanup()
	if err != nil {
		return PlanResult{}, s.fail(OpPlan, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return PlanResult{}, s.fail(OpPlan, err)
	}
	plan, err := s.showQuietly(ctx, tmp)
	if err != nil {
		return PlanResult{}, s.fail(OpShow, err)
	}
	data, err := os.ReadFile(tmp)
	if err != nil {
		return PlanResult{}, s.fail(OpPlan, err)
	}
	hash := sha256hex(data)
	file := filepath.Join(dir, hash[:16]+".tfplan")
	if err := writePrivate(planConfigFile(file), config); err != nil {
		return PlanResult{}, s.fail(OpPlan, err)
	}
	if s.ws.Owner != (PlanOwner{}) {
		owner, err := json.Marshal(s.ws.Owner)
		if err != nil {
			return PlanResult{}, s.fail(OpPlan, err)
		}
		if err := writePrivate(planOwnerFile(file), owner); err != nil {
			return PlanResult{}, s.fail(OpPlan, err)
		}
	}
	if s.ws.Confine != "" {
		// What the copy of the modules holds once planned (files the plan wrote there too):
		// Apply applies only while it still does.
		digest, err := modulesDigest(s.ws)
		if err != nil {
			return PlanResult{}, s.fail(OpPlan, err)
		}
		if err := writePrivate(planModulesFile(file), []byte(filepath.Base(s.ws.Confine)+" "+digest+"\n")); err != nil {
			return PlanResult{}, s.fail(OpPlan, err)
		}
	}
	if lock != nil {
		if err := writePrivate(planLockFile(file), lock); err != nil {
			return PlanResult{}, s.fail(OpPlan, err)
		}
	}
	if err := os.Rename(tmp, file); err != nil {
		return PlanResult{}, s.fail(OpPlan, err)
	}
	resources, truncated := ResourceChanges(plan)
	return PlanResult{Summary: Summarize(plan), Resources: resources, ResourcesTruncated: truncated, PlanFile: file, PlanHash: hash, HasChanges: changes}, nil
}

// showQuietly reads a saved plan as JSON (`terraform show -json`), keeping the JSON out of the
// log: it is no log material, and holds variable values.
func (s *session) showQuietly(ctx context.Context, file string) (*tfjson.Plan, error) {
	s.tf.SetStdout(s.watched(io.Discard))
	defer s.tf.SetStdout(s.watched(s.log))
	var plan *tfjson.Plan
	err := s.command(ctx, func(ctx context.Context) (err error) {
		plan, err = s.tf.ShowPlanFile(ctx, file)
		return err
	})
	return plan, err
}

// varFile writes the workspace's sensitive variables (if any) to a 0600 -var-file and returns
// the plan option naming it and how to remove it once the plan ran.
func (s *session) varFile() ([]tfexec.PlanOption, func(), error) {
	mc, err := splitConfig(s.ws)
	if err != nil || len(mc.values) == 0 {
		return nil, func() {}, err
	}
	path, remove, err := writeVarFile(s.ws.Root, mc.values)
	if err != nil {
		return nil, nil, err
	}
	return []tfexec.PlanOption{tfexec.VarFile(path)}, remove, nil
}

// init runs `terraform init` when .terraform is missing or was initialised for another main.tf
// or module: never -upgrade, -input=false, and never -reconfigure: that makes terraform forget
// the backend it initialised, take Root/terraform.tfstate (the local backend's own file) for a
// legacy local state migrated to it, and empty it — every resource forgotten. The backend block
// (Root's own state file) does not change between inits, so there is nothing to migrate and no
// prompt; a Root moved elsewhere (another path) fails init, saying the backend changed. Then,
// initialised now or before, every module terraform installed must be read from ws.Confine
// (the commit's modules folder) or downloaded by a remote source (checkModuleSources): else
// ErrModuleOutside and nothing is planned.
//
// The module's dependency lock file, when it has one, is Root's: copied there first, and init
// runs read-only (lockfile.go); without one Root keeps its own.
func (s *session) init(ctx context.Context) error {
	pinned, err := pinLock(s.ws)
	if err != nil {
		return s.fail(OpInit, err)
	}
	key, err := initKey(s.ws)
	if err != nil {
		return s.fail(OpInit, err)
	}
	if needsInit(s.ws.Root, key) {
		opts := []tfexec.InitOption{tfexec.Upgrade(false), tfexec.Reconfigure(false), tfexec.Backend(true), tfexec.Get(true)}
		if pinned {
			// terraform-exec has no option for -lockfile (hashicorp/terraform-exec#602) and
			// refuses TF_CLI_ARGS_init; its Dir option is the last argument, after every flag,
			// and Terraform takes it as the flag it is.
			opts = append(opts, tfexec.Dir("-lockfile=readonly"))
		}
		unlockCache, err := lockPluginCache(ctx)
		if err != nil {
			return s.fail(OpInit, err)
		}
		err = s.command(ctx, func(ctx context.Context) error {
			return s.tf.Init(ctx, opts...)
		})
		unlockCache()
		if err != nil {
			if ctx.Err() == nil && endedWithoutError(err) == nil {
				err = lockFailure(s.ws, pinned, s.log.String(), err)
			}
			return s.fail(OpInit, err)
		}
		if err := os.WriteFile(filepath.Join(s.ws.Root, ".terraform", initMarker), []byte(key+"\n"), 0o644); err != nil {
			return s.fail(OpInit, err)
		}
	}
	// Every module terraform will load must be the commit's (or downloaded by a remote source)
	// when the modules folder is a commit's (Confine).
	if err := checkModuleSources(s.ws); err != nil {
		return &Error{Op: OpInit, Component: s.ws.ID(), Err: err}
	}
	return nil
}

// Apply applies exactly the reviewed plan: plan.PlanFile must be in Root/plans, the bytes read
// from it must hash to plan.PlanHash, and those bytes are what terraform applies, with the
// config.json the plan was made with put back. Afterwards it records the plan as applied
// (stale.go), reads the outputs and removes the spent plan file. The plan last applied, given
// again while the state is still the one it left, returns the outputs without running terraform.
func (r *TFExec) Apply(ctx context.Context, ws Workspace, plan PlanResult) (Outputs, error) {
	ctx, cancel := r.stopInTime(ctx)
	defer cancel()
	s, unlock, err := r.begin(ctx, ws)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// A saved plan applies to the state its Root's backend names (terraform takes the backend
	// from the plan): a plan of another workspace would change that workspace's state.
	if dir := filepath.Join(s.ws.Root, planDir); filepath.Dir(filepath.Clean(plan.PlanFile)) != dir {
		return nil, s.fail(OpVerify, fmt.Errorf("%w: %s is not a plan of this workspace (%s)", ErrPlanChanged, plan.PlanFile, dir))
	}
	s.prunePlans(ctx, filepath.Clean(plan.PlanFile))
	if err := emptiedState(s.ws.Root); err != nil {
		return nil, s.fail(OpVerify, err)
	}
	if appliedAlready(s.ws.Root, plan.PlanHash) {
		// This plan was applied and nothing was since, but its outcome never reached the caller
		// (interrupted or crashed after terraform applied it): the outputs of that apply.
		removePlan(plan.PlanFile)
		return s.outputs(ctx)
	}
	data, err := os.ReadFile(plan.PlanFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, s.fail(OpVerify, fmt.Errorf("%w: %s is gone: a saved plan is removed once it can no longer be applied (the state moved on since it was made, or its deployment is over)", ErrPlanChanged, plan.PlanFile))
	}
	if err != nil {
		return nil, s.fail(OpVerify, fmt.Errorf("%w: %v", ErrPlanChanged, err))
	}
	if got := sha256hex(data); got != plan.PlanHash {
		return nil, s.fail(OpVerify, fmt.Errorf("%w: %s has sha256 %s, the reviewed plan %s", ErrPlanChanged, plan.PlanFile, got, plan.PlanHash))
	}
	if err := planStale(data, s.ws.Root); err != nil {
		removePlan(plan.PlanFile) // terraform would never apply it: it only holds the variables' values
		return nil, s.fail(OpVerify, err)
	}
	// Terraform reads the modules' files again while applying: they must be what was planned.
	if err := checkPlanModules(s.ws, plan.PlanFile); err != nil {
		removePlan(plan.PlanFile) // never applied as planned: it only holds the variables' values
		return nil, s.fail(OpVerify, err)
	}
	// Terraform applies with the providers installed now, which Root's lock file selected.
	if err := checkPlanLock(s.ws.Root, plan.PlanFile); err != nil {
		removePlan(plan.PlanFile)
		return nil, s.fail(OpVerify, err)
	}
	// Terraform applies the configuration saved in the plan, but evaluates it again, reading
	// config.json (main.tf's jsondecode(file(...))) as the workspace holds it now: another plan
	// or a drift refresh of this Root since rewrote it with another config. Put back the one
	// this plan was made with, so the outputs published are the reviewed config's.
	config, err := os.ReadFile(planConfigFile(plan.PlanFile))
	if err != nil {
		return nil, s.fail(OpVerify, fmt.Errorf("%w: the config the plan was made with: %v", ErrPlanChanged, err))
	}
	if _, err := writeIfChanged(filepath.Join(s.ws.Root, configFile), config); err != nil {
		return nil, s.fail(OpApply, err)
	}
	// Apply a private copy of the verified bytes, so the file cannot change between the check
	// and terraform reading it.
	applying := filepath.Join(s.ws.Root, planDir, ".applying.tfplan")
	if err := os.MkdirAll(filepath.Dir(applying), 0o755); err != nil {
		return nil, s.fail(OpApply, err)
	}
	if err := os.WriteFile(applying, data, 0o600); err != nil {
		return nil, s.fail(OpApply, err)
	}
	defer os.Remove(applying)
	if err := s.command(ctx, func(ctx context.Context) error {
		return s.tf.ApplyJSON(ctx, s.watched(s.ui), tfexec.DirOrPlan(applying))
	}); err != nil {
		if !appliedThenInterrupted(err, s.ui) {
			return nil, s.fail(OpApply, err)
		}
		// The context ended once terraform had applied the plan: the apply happened. It is
		// recorded as applied, so that the caller, which tries an interrupted call again, gets
		// its outputs then rather than a stale plan.
		recordApplied(s.ws.Root, plan.PlanHash)
		removePlan(plan.PlanFile)
		return nil, s.fail(OpApply, fmt.Errorf("terraform applied the plan, then was interrupted before its outputs were read: %w", err))
	}
	recordApplied(s.ws.Root, plan.PlanHash)
	removePlan(plan.PlanFile)
	s.prunePlans(ctx, "") // the state moved on: every other plan of Root is stale now
	out, err := s.outputs(ctx)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// outputs reads `terraform output -json` and flattens output "runtime" (the module object).
func (s *session) outputs(ctx context.Context) (Outputs, error) {
	s.tf.SetStdout(s.watched(io.Discard))
	var metas map[string]tfexec.OutputMeta
	err := s.command(ctx, func(ctx context.Context) (err error) {
		metas, err = s.tf.Output(ctx)
		return err
	})
	s.tf.SetStdout(s.watched(s.log))
	if err != nil {
		return nil, s.fail(OpOutput, err)
	}
	rt, ok := metas["runtime"]
	if !ok {
		return nil, s.fail(OpOutput, fmt.Errorf("the root module has no output \"runtime\" (outputs: %d)", len(metas)))
	}
	out := Outputs{}
	if v := bytes.TrimSpace(rt.Value); len(v) > 0 && !bytes.Equal(v, []byte("null")) {
		if err := json.Unmarshal(v, &out); err != nil {
			return nil, s.fail(OpOutput, fmt.Errorf("output \"runtime\" is not an object: %w", err))
		}
	}
	for k, v := range out {
		out[k] = compactJSON(v)
	}
	return out, nil
}

func compactJSON(v json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return v
	}
	return b.Bytes()
}

// planConfigFile is where Plan keeps, next to a saved plan, the config.json it was made with.
func planConfigFile(planFile string) string {
	return strings.TrimSuffix(planFile, ".tfplan") + ".config.json"
}

// writePrivate writes data to a new owner-only file at path (via a temporary file).
func writePrivate(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".new-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
