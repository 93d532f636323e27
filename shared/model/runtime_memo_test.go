package model

import (
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/params"
)

// TestParseRuntimeMemo: the remembered classification is parseRuntime's, from any goroutine, and
// the memo stays within its bound.
func TestParseRuntimeMemo(t *testing.T) {
	ps := []params.Parameter{
		{Name: "/iac/a/b/runtime", Value: `{"arn": "x", "id": 1}`},
		{Name: "/iac/a/c/runtime", Value: `{"placeholder": true}`},
		{Name: "/iac/a/d/runtime", Value: `not json`},
		{Name: "/iac/a/e/runtime", Value: `[1]`},
		{Name: "/iac/a/f/runtime", Value: `{"secret": 1}`, Type: params.TypeSecureString},
		{Name: "/iac/a/g/runtime", Value: "{\"bad\": \"\xff\"}"},
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				for _, p := range ps {
					info, msg := parseRuntimeMemo(p)
					wantInfo, wantMsg := parseRuntime(p)
					if !reflect.DeepEqual(info, wantInfo) || msg != wantMsg {
						t.Errorf("goroutine %d, %s: %+v %q, want %+v %q", g, p.Name, info, msg, wantInfo, wantMsg)
					}
				}
			}
		}()
	}
	wg.Wait()
	for i := range runtimeMemoEntries + 10 {
		parseRuntimeMemo(params.Parameter{Name: fmt.Sprintf("/iac/t/n%d/runtime", i), Value: `{}`})
	}
	runtimeMemo.Lock()
	n := len(runtimeMemo.m)
	runtimeMemo.Unlock()
	if n > runtimeMemoEntries {
		t.Errorf("the memo holds %d entries, more than its bound %d", n, runtimeMemoEntries)
	}
}
