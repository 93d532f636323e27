package params

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Parameter Store's documented limits (PutParameter in the SSM API reference), in one place:
// the model's validation, both stores and `karma params publish` check against them.
const (
	// StandardTierLimit is the largest value of a Standard parameter, in bytes (4 KB).
	StandardTierLimit = 4096
	// MaxValueBytes is the largest value Parameter Store accepts at all: an Advanced parameter
	// (8 KB). Karma publishes values above StandardTierLimit as Advanced.
	MaxValueBytes = 8192
	// MaxNameLength: of the 2048 characters SSM reports for a name, 1037 are reserved; the 1011
	// left include the ARN prefix "arn:aws:ssm:<region>:<account>:parameter", so AWS itself
	// allows ~45 fewer.
	MaxNameLength = 1011
	// MaxDepth is the most levels a hierarchical name may have.
	MaxDepth = 15
	// MaxDescription is the longest description, in characters.
	MaxDescription = 1024
)

// InvalidError says Parameter Store refuses a parameter as given: the name, value, type, tier or
// description breaks one of its rules. Retrying cannot help, so it is permanent for the pipeline's
// classifier (shared/pipeline.Classify dead-letters it; the apply stage fails the deployment).
type InvalidError struct{ Name, Reason string }

func (e *InvalidError) Error() string {
	return fmt.Sprintf("params: invalid parameter %q: %s", e.Name, e.Reason)
}

// Permanent marks the error as one no retry can fix.
func (e *InvalidError) Permanent() bool { return true }

func invalid(name, format string, a ...any) error {
	return &InvalidError{Name: name, Reason: fmt.Sprintf(format, a...)}
}

// CheckSize reports a value of size bytes that Parameter Store refuses: above MaxValueBytes, or
// above StandardTierLimit when tier is TierStandard ("" lets the tier follow the size).
func CheckSize(name string, size int, tier string) error {
	switch {
	case size > MaxValueBytes:
		return invalid(name, "value is %d bytes, at most %d allowed (Parameter Store's Advanced tier limit)", size, MaxValueBytes)
	case size > StandardTierLimit && tier == TierStandard:
		return invalid(name, "value is %d bytes, Standard tier allows %d", size, StandardTierLimit)
	}
	return nil
}

// CheckValue reports a value Parameter Store cannot hold as given: not UTF-8 text (its API is
// JSON, which would turn invalid bytes into U+FFFD), or too large for tier (see CheckSize).
func CheckValue(name, value, tier string) error {
	if off := FirstInvalidUTF8([]byte(value)); off >= 0 {
		return invalid(name, "invalid UTF-8 at byte offset %d (values are UTF-8 text)", off)
	}
	return CheckSize(name, len(value), tier)
}

// CheckName accepts "/seg/seg/..." with 1..15 non-empty segments of a-zA-Z0-9_.- whose first
// segment does not start with "aws" or "ssm" (case-insensitive), as SSM does.
func CheckName(name string) error {
	switch {
	case !strings.HasPrefix(name, "/"):
		return invalid(name, "name must start with '/'")
	case len(name) > MaxNameLength:
		return invalid(name, "name is %d characters long, at most %d allowed", len(name), MaxNameLength)
	}
	for i, r := range name {
		if !(r == '/' || r == '_' || r == '.' || r == '-' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
			return invalid(name, "character %q at offset %d not allowed (only a-zA-Z0-9_.-/)", r, i)
		}
	}
	segs := strings.Split(name[1:], "/")
	if len(segs) > MaxDepth {
		return invalid(name, "%d levels deep, at most %d allowed", len(segs), MaxDepth)
	}
	for _, seg := range segs {
		if seg == "" {
			return invalid(name, "empty path segment")
		}
	}
	if first := strings.ToLower(segs[0]); strings.HasPrefix(first, "aws") || strings.HasPrefix(first, "ssm") {
		return invalid(name, `names can't start with "aws" or "ssm"`)
	}
	return nil
}

// CheckPut checks a write against every rule that does not depend on what is stored already
// (tier downgrades and type changes do) and returns the effective type. `karma params publish`
// runs it on every parameter before writing any.
func CheckPut(in PutInput) (string, error) {
	if err := CheckName(in.Name); err != nil {
		return "", err
	}
	typ := in.Type
	switch typ {
	case "":
		typ = TypeString
	case TypeString, TypeStringList, TypeSecureString:
	default:
		return "", invalid(in.Name, "type %q not one of String, StringList, SecureString", in.Type)
	}
	if in.Tier != "" && in.Tier != TierStandard && in.Tier != TierAdvanced {
		return "", invalid(in.Name, "tier %q not one of Standard, Advanced", in.Tier)
	}
	if in.Value == "" {
		return "", invalid(in.Name, "empty value")
	}
	if err := CheckValue(in.Name, in.Value, in.Tier); err != nil {
		return "", err
	}
	if len(in.Description) > MaxDescription {
		return "", invalid(in.Name, "description longer than %d characters", MaxDescription)
	}
	return typ, nil
}

// FirstInvalidUTF8 returns the offset of the first byte of b that is not valid UTF-8, or -1 when
// b is valid. Text entering Karma (configs, parameter values, change requests) is UTF-8; an
// invalid byte is reported where it is, never replaced by U+FFFD.
func FirstInvalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	off := 0
	for off < len(b) {
		r, size := utf8.DecodeRune(b[off:])
		if r == utf8.RuneError && size <= 1 {
			return off
		}
		off += size
	}
	return -1 // unreachable: b is not valid
}
