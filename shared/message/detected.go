package message

import "time"

// ChangeDetected (change.detected v4) is the root of a change set: what changed and where it came
// from. v4 added the sources "rollback" (Rollback) and "drift" (Drift) and promotions
// (Promotion); v3 had none of them; v1
// had a single component and no ChangeSetID; v2 had no truncated pushes and carried a change
// request's configs instead of its commit. Older versions are upcast on decode.
type ChangeDetected struct {
	// ChangeSetID is unique per root change: the id of this message, or for a promotion the
	// id of the change's root (its change set in the environment is "<change_set_id>/<env>").
	ChangeSetID string `json:"change_set_id"`
	Source      string `json:"source"` // Source*
	// Components changed directly (source request, parameter, runtime).
	Components []ComponentRef `json:"components"`
	// Files are the repository paths a commit changed (source git); resolve maps them to every
	// component whose layers include them (base layer and extends templates included). An
	// envelope with no env concerns every environment the files touch.
	Files []string `json:"files,omitempty"`
	// Truncated: the push's payload did not list every file (a cap on commits or file lists);
	// resolve lists them by diffing Commit.Before..Commit.SHA in the repository.
	Truncated bool `json:"truncated,omitempty"`
	// Commit is the commit whose tree is deployed: set for SourceGit, and for SourceRequest
	// (the commit the request became). Other sources deploy the deploy branch's head.
	Commit *Commit `json:"commit,omitempty"`
	// Parameter is set for SourceParameter and SourceRuntime: the version the change is about,
	// and the time it was written.
	Parameter *ParameterWrite `json:"parameter,omitempty"`
	// ChangedKeys are the runtime keys that changed (SourceRuntime); nil = unknown, all keys.
	ChangedKeys []string `json:"changed_keys,omitzero"`
	// Covers lists the earlier versions of Parameter whose changes this change also carries,
	// oldest first (SourceRuntime): a change decided from an event that named no version is
	// compared with the latest earlier version whose change is known, and the versions between
	// were written by others. Added to version 4: optional.
	Covers []CoveredVersion `json:"covers,omitempty"`
	// RuntimeDiff is how the runtime's top-level keys changed (SourceRuntime), against the
	// version the change is compared with, sorted by key: the values as JSON text, with the
	// values of secret-named keys and the passwords of URLs replaced (shared/redact), and none
	// for a SecureString. Resolve gives it to the policies of the dependents it redeploys.
	// Added to version 4: optional.
	RuntimeDiff []KeyChange `json:"runtime_diff,omitempty"`
	// Request is set for SourceRequest: the proposed config (resolved env file) per component.
	Request *ChangeRequest `json:"request,omitempty"`
	// Removed lists components whose config.json was deleted: destroys, held unless policy allows.
	Removed []ComponentRef `json:"removed,omitempty"`
	// Drift lists the drift events (drift.detected's drift_id) a corrective change set puts
	// right (SourceDrift): its root causes.
	Drift []string `json:"drift,omitempty"`
	// AutoApprove: plans may be applied without review.
	AutoApprove bool `json:"auto_approve"`
	// Rollback is set for SourceRollback: the applied deployment whose config is deployed again.
	Rollback *Rollback `json:"rollback,omitempty"`
	// Promotion is set when the change enters this environment by the promotion order, after
	// succeeding in the previous one (the same commit and files as there).
	Promotion *Promotion `json:"promotion,omitempty"`
	// Retry is set when a commit's change held in this environment (not a promotion: a
	// promotion's tries are Promotion.Attempt) is tried again, after what held it moved: the
	// same commit and files. Added to version 4: optional.
	Retry *HeldRetry `json:"retry,omitempty"`
}

// HeldRetry is a try of a commit's change into an environment after held tries: its change set
// is "<change_set_id>/<env>@<attempt>", the held one "<change_set_id>/<env>" (or "@<attempt-1>").
type HeldRetry struct {
	Attempt int `json:"attempt"` // 2 or more
}

// KeyChange is one top-level key of a document that changed: op "add", "change" or "remove",
// and its value before and after as JSON text ("" where it has none, or it is not shown).
type KeyChange struct {
	Key    string `json:"key"`
	Op     string `json:"op"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// ChangeDetectedV3 is the third version: no rollbacks, no drift corrections, no promotions.
type ChangeDetectedV3 struct {
	ChangeSetID string            `json:"change_set_id"`
	Source      string            `json:"source"`
	Components  []ComponentRef    `json:"components"`
	Files       []string          `json:"files,omitempty"`
	Truncated   bool              `json:"truncated,omitempty"`
	Commit      *CommitV3         `json:"commit,omitempty"`
	Parameter   *ParameterVersion `json:"parameter,omitempty"`
	ChangedKeys []string          `json:"changed_keys,omitzero"`
	Request     *ChangeRequest    `json:"request,omitempty"`
	Removed     []ComponentRef    `json:"removed,omitempty"`
	AutoApprove bool              `json:"auto_approve"`
}

// Rollback names the applied deployment whose config a rollback deploys again.
type Rollback struct {
	DeploymentID string `json:"deployment_id"` // the deployment rolled back to
	ChangeSetID  string `json:"change_set_id"` // its change set
	// Commit is its change set's commit: the Terraform module the rollback deploys.
	Commit string `json:"commit"`
	// ConfigHash is the hash of the config it deployed (what the rollback deploys again).
	ConfigHash string `json:"config_hash"`
	// Replaces is the component's deployment applied last when the rollback was asked: what it
	// rolls back from ("" when none is known).
	Replaces string `json:"replaces,omitempty"`
}

// Promotion says where a promoted change comes from.
type Promotion struct {
	From    string `json:"from"`     // the change set of the previous environment
	FromEnv string `json:"from_env"` // its environment
	// Soak is the soak the change waited there after applying (Go duration text; "" = none).
	Soak string `json:"soak,omitempty"`
	// SoakSkipped is set when someone ended the soak early (karma promote --reason).
	SoakSkipped *GateSkip `json:"soak_skipped,omitempty"`
	// Attempt is the try of the promotion into the environment: 2 or more after held tries
	// (change set "<change>/<env>@<attempt>"); 0 for the first.
	Attempt int `json:"attempt,omitempty"`
}

// GateSkip records who moved a change through a gate early, and why.
type GateSkip struct {
	By     string `json:"by"`
	Reason string `json:"reason"`
}

// ChangeDetectedV1 is the first version: one component, no change set id or removals.
type ChangeDetectedV1 struct {
	Source      string            `json:"source"`
	Component   ComponentRef      `json:"component"`
	Commit      *CommitV2         `json:"commit,omitempty"`
	Parameter   *ParameterVersion `json:"parameter,omitempty"`
	ChangedKeys []string          `json:"changed_keys,omitempty"`
	AutoApprove bool              `json:"auto_approve"`
}

// ChangeDetectedV2 is the second version: no truncated pushes, a request's configs instead of
// its commit.
type ChangeDetectedV2 struct {
	ChangeSetID string            `json:"change_set_id"`
	Source      string            `json:"source"`
	Components  []ComponentRef    `json:"components"`
	Files       []string          `json:"files,omitempty"`
	Commit      *CommitV2         `json:"commit,omitempty"`
	Parameter   *ParameterVersion `json:"parameter,omitempty"`
	ChangedKeys []string          `json:"changed_keys,omitzero"`
	Request     *ChangeRequestV2  `json:"request,omitempty"`
	Removed     []ComponentRef    `json:"removed,omitempty"`
	AutoApprove bool              `json:"auto_approve"`
}

// Commit identifies a Git commit.
type Commit struct {
	SHA     string `json:"sha"`
	Author  string `json:"author"`
	Message string `json:"message,omitempty"`
	Branch  string `json:"branch,omitempty"`
	Repo    string `json:"repo,omitempty"`
	// Before is the branch's commit before the push ("" or zeros: a new branch); set with
	// Truncated.
	Before string `json:"before,omitempty"`
	// Pusher is who pushed it (the push webhook's pusher) and Authors the authors of every
	// commit of the push, as the webhook listed them: for separation of duties, none of them
	// may approve the change in a protected environment. For a commit the CLI handed over, no
	// pusher, and as Authors those of every commit it brings that was never handed over.
	Pusher  string   `json:"pusher,omitempty"`
	Authors []string `json:"authors,omitempty"`
}

// CommitV3 is Commit as change.detected v3 carries it: no pusher, no authors of the push.
type CommitV3 struct {
	SHA     string `json:"sha"`
	Author  string `json:"author"`
	Message string `json:"message,omitempty"`
	Branch  string `json:"branch,omitempty"`
	Repo    string `json:"repo,omitempty"`
	Before  string `json:"before,omitempty"`
}

// CommitV2 is Commit as change.detected v1 and v2 carry it.
type CommitV2 struct {
	SHA     string `json:"sha"`
	Author  string `json:"author"`
	Message string `json:"message,omitempty"`
	Branch  string `json:"branch,omitempty"`
	Repo    string `json:"repo,omitempty"`
}

// ParameterVersion identifies one version of one parameter by its number (drift.detected;
// change.detected before version 4, whose parameter is now a ParameterWrite).
type ParameterVersion struct {
	Name    string `json:"name"`
	Version int64  `json:"version"`
	// ModifiedBy is the LastModifiedUser Parameter Store reports, when known.
	ModifiedBy string `json:"modified_by,omitempty"`
}

// ParameterWrite is the parameter version a change (change.detected v4) is about: a version and
// the time it was written. A parameter deleted and created again starts again at version 1, so
// the number alone does not say which life of the parameter the version is of: resolve reads
// the version of that number only if it was written at WrittenAt, and refuses the change
// otherwise, rather than deploy another value under its name (params.GetWritten).
type ParameterWrite struct {
	Name    string `json:"name"`
	Version int64  `json:"version"`
	// ModifiedBy is the LastModifiedUser Parameter Store reports, when known.
	ModifiedBy string `json:"modified_by,omitempty"`
	// WrittenAt is the version's LastModifiedDate (UTC; its key keeps milliseconds,
	// ParameterVersionKey). Zero: not said (a change made before it was added, upcast from an
	// older version): the version's number decides. Added to version 4: optional.
	WrittenAt time.Time `json:"written_at,omitzero"`
}

// parameterWrite is an older change.detected's parameter as version 4 carries it: no time of
// writing.
func parameterWrite(p *ParameterVersion) *ParameterWrite {
	if p == nil {
		return nil
	}
	return &ParameterWrite{Name: p.Name, Version: p.Version, ModifiedBy: p.ModifiedBy}
}

// CoveredVersion is an earlier version of the parameter a change also carries: who wrote it and the
// top-level keys it changed against the version before it ([]: none; absent: unknown, every key).
type CoveredVersion struct {
	Version     int64    `json:"version"`
	ModifiedBy  string   `json:"modified_by,omitempty"`
	ChangedKeys []string `json:"changed_keys,omitzero"`
}

// ChangeRequest is a proposed config change. Since v3 the proposed files are in the request's
// commit (change.detected's Commit); Configs is set only by requests upcast from v2, which
// resolve builds as overrides of the deploy branch's head.
type ChangeRequest struct {
	ID      string            `json:"id"`
	Configs map[string]string `json:"configs,omitempty"` // "<type>/<nickname>" -> new env-file JSON
}

// ChangeRequestV2 is ChangeRequest as change.detected v2 carries it.
type ChangeRequestV2 struct {
	ID      string            `json:"id"`
	Configs map[string]string `json:"configs"`
}
