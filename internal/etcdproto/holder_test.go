package etcdproto

import (
	"slices"
	"testing"

	"github.com/baton-go/baton/backend/driver"
)

func TestHolderImage(t *testing.T) {
	type report struct {
		h    driver.Holder
		held bool
	}
	var got []report
	im := NewHolderImage(func(h driver.Holder, held bool) { got = append(got, report{h, held}) })
	im.Report(true) // empty, forced
	im.Put("b", "mb", 7)
	im.Put("a", "ma", 5)
	im.Report(false) // a holds
	im.Put("c", "mc", 9)
	im.Report(false) // no change: nothing
	im.Delete("a")
	im.Report(false) // b holds
	im.Clear()
	im.Report(false) // none
	im.Report(false) // still none: nothing
	want := []report{
		{held: false},
		{h: driver.Holder{Member: "ma", Token: 5}, held: true},
		{h: driver.Holder{Member: "mb", Token: 7}, held: true},
		{held: false},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("reports = %+v, want %+v", got, want)
	}
}
