package model

import (
	"encoding/json"
	"math/big"
	"strings"
)

// SameJSON reports whether two JSON documents hold the same value: objects whatever their key
// order, arrays in order, numbers by their exact value — 1, 1.0 and 1e0 are one number, while
// 12345678901234567 and 12345678901234568 are two (decoded as float64 they would be one, and a
// changed id would go unnoticed). What is not JSON is compared as text. It is the one comparison
// of runtime values: the apply stage's changed keys and the ingest stage's agree.
func SameJSON(a, b json.RawMessage) bool {
	x, okx := decodeNumbers(a)
	y, oky := decodeNumbers(b)
	if !okx || !oky {
		return string(a) == string(b)
	}
	return sameValue(x, y)
}

func decodeNumbers(b json.RawMessage) (any, bool) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return nil, false
	}
	return v, true
}

func sameValue(x, y any) bool {
	switch x := x.(type) {
	case map[string]any:
		y, ok := y.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !sameValue(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := y.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := y.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		rx, okx := new(big.Rat).SetString(string(x))
		ry, oky := new(big.Rat).SetString(string(y))
		return okx && oky && rx.Cmp(ry) == 0
	}
	return x == y // string, bool, nil
}
