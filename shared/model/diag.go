package model

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Severity of a Diagnostic.
type Severity string

const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
)

// Diagnostic codes: stable, documented in docs/config-format.md, used by tests and --json output.
const (
	CodeInvalidJSON      = "invalid-json"
	CodeNotObject        = "not-an-object"
	CodeSchema           = "schema"
	CodeMissingRef       = "missing-reference"
	CodeCycle            = "cycle"
	CodeDuplicate        = "duplicate-component"
	CodeExtends          = "extends"
	CodeKarmaBlock       = "karma-block"
	CodeBadRef           = "bad-reference"
	CodeLayout           = "layout"
	CodeAccountEnv       = "account-environment"
	CodeRuntime          = "runtime"
	CodeParamPath        = "parameter-path"
	CodeEnvironmentBound = "environment-binding"
	CodeAmbiguousRef     = "ambiguous-reference" // an attributes rule matches several components
	CodeRuntimeConflict  = "runtime-conflict"    // two components write one runtime parameter
	CodeTooLarge         = "too-large"
)

// Diagnostic is one problem found while loading or validating, naming where it is.
type Diagnostic struct {
	Severity  Severity `json:"severity"`
	Code      string   `json:"code"`
	File      string   `json:"file,omitempty"`
	Line      int      `json:"line,omitempty"`
	Column    int      `json:"column,omitempty"`
	Pointer   string   `json:"pointer,omitempty"` // JSON pointer inside File
	Component string   `json:"component,omitempty"`
	Message   string   `json:"message"`
}

func (d Diagnostic) String() string {
	var b strings.Builder
	switch {
	case d.File != "" && d.Line > 0:
		fmt.Fprintf(&b, "%s:%d:%d: ", d.File, d.Line, d.Column)
	case d.File != "":
		fmt.Fprintf(&b, "%s: ", d.File)
	case d.Component != "":
		fmt.Fprintf(&b, "%s: ", d.Component)
	}
	fmt.Fprintf(&b, "%s [%s]", d.Severity, d.Code)
	if d.Pointer != "" {
		fmt.Fprintf(&b, " at %s", d.Pointer)
	}
	b.WriteString(": ")
	b.WriteString(d.Message)
	return b.String()
}

// Diagnostics is every problem found, in a deterministic order.
type Diagnostics []Diagnostic

// Errors returns only the error-severity diagnostics.
func (ds Diagnostics) Errors() Diagnostics { return ds.filter(SevError) }

// Warnings returns only the warning-severity diagnostics.
func (ds Diagnostics) Warnings() Diagnostics { return ds.filter(SevWarning) }

func (ds Diagnostics) filter(s Severity) Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == s {
			out = append(out, d)
		}
	}
	return out
}

// Err joins every error-severity diagnostic into one error, or returns nil.
func (ds Diagnostics) Err() error {
	var errs []error
	for _, d := range ds.Errors() {
		errs = append(errs, errors.New(d.String()))
	}
	return errors.Join(errs...)
}

// Sort orders diagnostics by file, line, component, code, message.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Component != b.Component {
			return a.Component < b.Component
		}
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		return a.Message < b.Message
	})
}
