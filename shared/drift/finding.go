package drift

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/usekarma/karma/shared/message"
)

// Finding is one drift: a drift.detected payload (Action and ChangeSetID are set when it is
// recorded) and its environment.
type Finding struct {
	message.DriftDetected
	Env string `json:"env"`
	// Recorded is set when an earlier run already published this drift: it is one event, not
	// published again (and no second corrective change set is queued for it).
	Recorded *Recorded `json:"recorded,omitempty"`
	// Rollback is the component's standing rollback (compare.go): its drift is reported, never
	// corrected, since the correction would deploy the head's config over the rollback.
	Rollback *RolledBack `json:"rollback,omitempty"`
}

// Recorded is what the run that first published a drift remembered of it.
type Recorded struct {
	MessageID   string `json:"message_id"`
	Action      string `json:"action"`
	ChangeSetID string `json:"change_set_id,omitempty"`
}

// driftID is a drift's id: "drift-" and the first 16 hex digits of the SHA-256 of what
// identifies it — the component, kind and reason, what was found and expected, and the
// component's last deployment (so a drift that comes back after a corrective deployment is a
// new one, while the same drift seen by every run until then is one).
func driftID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "drift-" + hex.EncodeToString(sum[:8])
}

func paramRef(p *message.ParameterVersion) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf("%s@%d", p.Name, p.Version)
}

// identify sets f's DriftID from its fields and the component's last deployment id.
func (f *Finding) identify(lastDeployment string, extra ...string) {
	parts := append([]string{f.Env, f.Component, f.Kind, f.Reason, paramRef(f.Parameter), f.Expected, f.Found, lastDeployment}, extra...)
	f.DriftID = driftID(parts...)
}

func short(sha string) string { return sha[:min(len(sha), 12)] }

// by names who last modified a parameter, when the store says.
func by(user string) string {
	if user == "" {
		return ""
	}
	return " (by " + user + ")"
}
