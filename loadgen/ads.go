package loadgen

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// ParseAds reads a comma-separated list of ad ids ("1,2,3").
func ParseAds(s string) ([]uint64, error) {
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 63)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("ad id %q is not a positive integer", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no ad ids in %q", s)
	}
	return out, nil
}

// FetchAds lists the active ads of the server at base through GET /ads, following its Link: rel="next" pages. The order is the
// API's (by id), so the lowest id is the most popular in the Zipf draw.
func FetchAds(base string) ([]uint64, error) {
	_, prefix, err := target(base)
	if err != nil {
		return nil, err
	}
	var ids []uint64
	next := "/ads?status=active&limit=1000"
	for next != "" {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(prefix + next)
		err := fasthttp.DoTimeout(req, resp, 10*time.Second)
		if err == nil && resp.StatusCode() != 200 {
			err = fmt.Errorf("GET %s: status %d: %.200s", next, resp.StatusCode(), resp.Body())
		}
		var page []struct {
			ID uint64 `json:"id"`
		}
		if err == nil {
			err = json.Unmarshal(resp.Body(), &page)
		}
		link := string(resp.Header.Peek("Link"))
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
		if err != nil {
			return nil, fmt.Errorf("listing ads: %w", err)
		}
		for _, a := range page {
			ids = append(ids, a.ID)
		}
		next = ""
		if i, j := strings.Index(link, "<"), strings.Index(link, `>; rel="next"`); i >= 0 && j > i {
			next = link[i+1 : j]
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("GET /ads lists no active ad: create some (adtracker seed) or pass --ads")
	}
	return ids, nil
}
