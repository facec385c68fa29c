package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// BatchHeader carries a webhook batch's id: the same on every retry of
// the batch.
const BatchHeader = "Crawlmesh-Batch"

// hookSink POSTs each batch as a JSON array.
type hookSink struct {
	url     string // expanded: may hold a token; never logged
	client  *http.Client
	timeout time.Duration
	redact  *redactor
}

func newWebhook(url string, timeout time.Duration, r *redactor) *hookSink {
	return &hookSink{url: url, timeout: timeout, redact: r,
		client: &http.Client{
			// Redirects are not followed: a batch goes where it was sent.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     http.DefaultTransport.(*http.Transport).Clone(),
		}}
}

func (h *hookSink) Deliver(ctx context.Context, b Batch) error {
	body, err := json.Marshal(b.Items)
	if err != nil {
		return Permanent(fmt.Errorf("encode batch: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return Permanent(errors.New("webhook: bad URL (check --webhook)"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(BatchHeader, b.ID)
	req.Header.Set("User-Agent", "crawlmesh-sink")
	resp, err := h.client.Do(req)
	if err != nil {
		// url.Error quotes the URL, which may hold a token.
		return fmt.Errorf("webhook: %s", h.redact.String(err.Error()))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("webhook: the receiver answered %s", resp.Status)
	default:
		// 3xx and other 4xx: the receiver refuses; retried all the same
		// until the give-up time, but shown as needing a fix.
		return Permanent(fmt.Errorf("webhook: the receiver answered %s", resp.Status))
	}
}

func (h *hookSink) Close() { h.client.CloseIdleConnections() }
