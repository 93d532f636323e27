package queue

import "errors"

// ErrStaleReceipt is matched (errors.Is) by the error of Delete, ChangeVisibility and Kill when
// the receipt handle is no longer the message's current one: the message was received again
// since (its visibility timeout expired and another consumer got it), or it is gone (deleted,
// dead-lettered). The caller no longer owns the message and must not assume its ack took effect.
var ErrStaleReceipt = errors.New("queue: stale receipt handle")
