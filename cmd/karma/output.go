package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/usekarma/karma/shared/model"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printDiagnostics writes every diagnostic, one a line, and returns an error when any is an error.
func printDiagnostics(w io.Writer, ds model.Diagnostics) error {
	for _, d := range ds {
		fmt.Fprintln(w, d.String())
	}
	if n := len(ds.Errors()); n > 0 {
		return &silentError{fmt.Errorf("%d error(s)", n)}
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
