package audit

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/message"
)

// Explanation says who is behind an audit record and why it exists, read from the record and
// the envelope in its body: what `karma audit log` prints beside each record.
type Explanation struct {
	// Author is who caused the root change, as recorded at its source: "<name> (<kind>)".
	Author string `json:"author"`
	// Approver is who approved a held plan (deployment.approved's approved_by), distinct from
	// the author; "auto-approve" when the change was approved by policy.
	Approver string `json:"approver,omitempty"`
	// Cause is why the record exists: the commit, parameter version, change request or
	// upstream deployment behind it, why it was skipped or failed; "" when the payload does not
	// say (the causation id then tells which message it answered).
	Cause string `json:"cause,omitempty"`
}

// explained is the part of any payload (or of the body of a record written outside the
// pipeline) that explains it. Every field is optional: unknown types and versions explain what
// they share with known ones.
type explained struct {
	ApprovedBy string                    `json:"approved_by"`
	CausedBy   []message.Cause           `json:"caused_by"`
	RootCauses []message.Cause           `json:"root_causes"`
	Rejected   string                    `json:"rejected"`
	Held       string                    `json:"held"`
	Source     string                    `json:"source"`
	Commit     *message.Commit           `json:"commit"`
	Parameter  *message.ParameterVersion `json:"parameter"`
	Request    *struct {
		ID string `json:"id"`
	} `json:"request"`
	Rollback  *message.Rollback  `json:"rollback"`  // change.detected v4
	Promotion *message.Promotion `json:"promotion"` // change.detected v4
	Retry     *message.HeldRetry `json:"retry"`     // change.detected v4: a held hotfix tried again
	Reason    string             `json:"reason"`    // deployment.skipped, drift.detected
	Detail    string             `json:"detail"`
	// drift.detected; change.detected of a corrective change set (drift ids)
	DriftID string   `json:"drift_id"`
	Kind    string   `json:"kind"`
	Drift   []string `json:"drift"`
	Stage   string   `json:"stage"` // deployment.failed
	Error   string   `json:"error"`
	// audit.checkpoint
	Digest string `json:"digest"`
	Part   int    `json:"part"`
	Parts  int    `json:"parts"`
}

// Explain reads who and why from a record. It never fails: a body it cannot read explains
// nothing beyond the record's own fields.
func Explain(r audit.Record) Explanation {
	e := Explanation{Author: author(r)}
	var body struct {
		Payload json.RawMessage `json:"payload"` // an envelope
		Detail  json.RawMessage `json:"detail"`  // an entry of the webhook endpoint
	}
	_ = json.Unmarshal(r.Body, &body)
	var p explained
	switch {
	case r.Type == audit.CheckpointType:
		_ = json.Unmarshal(r.Body, &p)
	case len(body.Payload) > 0:
		_ = json.Unmarshal(body.Payload, &p)
	case len(body.Detail) > 0:
		_ = json.Unmarshal(body.Detail, &p)
	}
	e.Approver = p.ApprovedBy
	e.Cause = p.cause(r.Type)
	e.Author, e.Approver, e.Cause = flat(e.Author), flat(e.Approver), flat(e.Cause)
	return e
}

// flat replaces control characters (newlines included) with spaces: an explanation is printed
// on one line, whatever a payload holds.
func flat(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func author(r audit.Record) string {
	switch {
	case r.Actor == "":
		return r.ActorKind
	case r.ActorKind == "":
		return r.Actor
	}
	return r.Actor + " (" + r.ActorKind + ")"
}

// cause is why a record of type typ with payload p exists.
func (p explained) cause(typ string) string {
	switch {
	case typ == audit.CheckpointType && p.Digest != "":
		return fmt.Sprintf("checkpoint %s, part %d of %d", audit.Short(p.Digest), p.Part, p.Parts)
	case p.Rejected != "":
		return "rejected: " + p.Rejected
	case p.Held != "":
		return "held (tried again once the environments it waits for move): " + p.Held
	case p.DriftID != "":
		return fmt.Sprintf("%s drift (%s): %s", p.Kind, p.Reason, firstLine(p.Detail, 100))
	case len(p.Drift) > 0:
		return "correcting drift " + strings.Join(p.Drift, ", ")
	case len(p.CausedBy) > 0:
		return causes(p.CausedBy)
	case len(p.RootCauses) > 0:
		return causes(p.RootCauses)
	case p.Rollback != nil:
		return rollbackTo(p.Rollback.DeploymentID, p.Rollback.Commit)
	case p.Promotion != nil && p.Commit != nil:
		return promotedFrom(*p.Promotion) + ", " + commit(p.Commit.SHA, p.Commit.Message)
	case p.Retry != nil && p.Commit != nil:
		return fmt.Sprintf("try %d (the ones before were held), %s", p.Retry.Attempt, commit(p.Commit.SHA, p.Commit.Message))
	case p.Commit != nil:
		return commit(p.Commit.SHA, p.Commit.Message)
	case p.Parameter != nil:
		return fmt.Sprintf("parameter %s@%d", p.Parameter.Name, p.Parameter.Version)
	case p.Request != nil:
		return "request " + p.Request.ID
	case p.Stage != "" && p.Error != "":
		return fmt.Sprintf("%s failed: %s", p.Stage, firstLine(p.Error, 100))
	case p.Reason != "" && p.Detail != "":
		return fmt.Sprintf("%s: %s", p.Reason, firstLine(p.Detail, 100))
	case p.Reason != "":
		return firstLine(p.Reason, 100)
	}
	return ""
}

// causes describes a deployment's causes: "commit 512423cb3a48", "parameter
// /iac/vpc/core/config@2", "request r-1", "deployment dep-1 (keys vpc_id, subnets)".
func causes(cs []message.Cause) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		switch c.Kind {
		case message.CauseCommit:
			out[i] = commit(c.ID, "")
		case message.CauseParameter, message.CauseRequest:
			out[i] = c.Kind + " " + c.ID
		case message.CauseDeployment:
			out[i] = "deployment " + c.ID
			switch {
			case c.Trigger == message.TriggerOnAnyApply:
				out[i] += " (redeploy on any apply: no consumed key changed)"
			case len(c.Keys) > 0:
				out[i] += " (keys " + strings.Join(c.Keys, ", ") + ")"
			}
		case message.CauseRollback:
			out[i] = rollbackTo(c.ID, "")
		case message.CausePromotion:
			out[i] = "promoted from " + c.ID
		default:
			out[i] = strings.TrimSpace(c.Kind + " " + c.ID)
		}
	}
	return strings.Join(out, "; ")
}

func rollbackTo(dep, sha string) string {
	if sha == "" {
		return "rollback to " + dep
	}
	return "rollback to " + dep + " (" + commit(sha, "") + ")"
}

// promotedFrom: "promoted from <change set> (dev, soak of 30m skipped by grace: why)".
func promotedFrom(p message.Promotion) string {
	s := "promoted from " + p.From + " (" + p.FromEnv
	switch {
	case p.SoakSkipped != nil:
		s += fmt.Sprintf(", soak skipped by %s: %s", p.SoakSkipped.By, firstLine(p.SoakSkipped.Reason, 60))
	case p.Soak != "":
		s += ", after a soak of " + p.Soak
	}
	if p.Attempt > 1 {
		s += fmt.Sprintf(", try %d: the ones before were held", p.Attempt)
	}
	return s + ")"
}

func commit(sha, msg string) string {
	s := "commit " + sha[:min(len(sha), 12)]
	if subject := firstLine(msg, 60); subject != "" {
		s += fmt.Sprintf(" %q", subject)
	}
	return s
}

// firstLine is s's first line, cut to n runes.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
