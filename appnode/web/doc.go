// Package web is appnode's web page: a small single-page client for the
// feed (sign up, post, follow, a home timeline that updates live, any
// user's posts), served by every member at / from files embedded in the
// binary. It is plain HTML, CSS and JavaScript: nothing to build.
//
// The page talks to the member it was loaded from, with the user's
// bearer token kept in the browser's localStorage. The live timeline is
// read with fetch() and a stream reader rather than EventSource, which
// cannot send an Authorization header: the token never goes into a URL,
// where access logs would keep it.
package web
