// A newer CAC Bridge the browser holds back. The Chrome family updates a running extension only
// once it is idle, and the host's open port keeps this worker from ever idling: without this, a
// package upgrade would wait for the person to restart the browser. The new version is taken as
// soon as nobody is in the middle of something (a CAC Bridge window open, a request to the host
// unanswered): reloading then would cut a PIN entry or a signature short.

/**
 * @param {{busy: () => boolean, reload: () => void, setTimer?: (fn: () => void, ms: number) => any, every?: number}} deps
 *   busy: whether a person's request is under way; reload: take the new version (runtime.reload)
 */
export function takeUpdateWhenIdle({ busy, reload, setTimer = (fn, ms) => setTimeout(fn, ms), every = 2000 }) {
  const attempt = () => {
    if (busy()) setTimer(attempt, every);
    else reload();
  };
  attempt();
}
