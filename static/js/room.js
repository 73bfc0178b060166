// The live room: speaks docs/protocol.md (version 1) over one websocket.
// Messages are shown as text only (textContent), ordered by seq, never twice.
// Every visible word comes from the <template id="room-words"> in room.html.

const $ = (id) => document.getElementById(id);
const root = $("room");
const circleId = root.dataset.circleId;
const circleSlug = root.dataset.circleSlug;
const words = Object.fromEntries(
  [...$("room-words").content.querySelectorAll("[data-word]")].map((node) => [
    node.dataset.word,
    node.textContent.trim(),
  ]),
);

// "%s" in a word is replaced by each value in turn.
function fill(word, ...values) {
  let text = words[word] ?? "";
  for (const value of values) text = text.replace("%s", String(value));
  return text;
}

const list = $("message-list");
const emptyNote = $("no-messages");
const statusLine = $("room-status");
const banner = $("session-banner");
const presenceList = $("presence-list");
const composer = $("composer");
const box = $("composer-text");
const note = $("composer-note");
const waitLine = $("composer-wait");
const sendButton = $("composer-send");
const openButton = $("open-session");
const closeButton = $("close-session");
const handButton = $("hand-button");
const passButton = $("pass-button");
const floorNote = $("floor-note");
const facilitationChoice = $("facilitation-choice");
const facilitationBox = $("composer-facilitation");
const floorEls = {
  mode: $("floor-mode"),
  paused: $("floor-paused"),
  speaker: $("floor-speaker"),
  time: $("floor-time"),
  left: $("floor-left"),
  place: $("floor-place"),
  queueBox: $("floor-queue-box"),
  queue: $("floor-queue"),
  queueEmpty: $("floor-queue-empty"),
  roundBox: $("floor-round-box"),
  roundPhase: $("round-phase"),
  roundOrder: $("round-order"),
  roundPassed: $("round-passed"),
  announce: $("floor-announce"),
};
const facilitatorPanel = $("facilitator-panel");
const facilitatorNote = $("facilitator-note");
const modeForm = $("mode-form");
const modeSelect = $("mode-select");
const nextButton = $("floor-next");
const pauseForm = $("pause-form");
const pauseMinutes = $("pause-minutes");
const pauseToggle = $("pause-toggle");
const grantForm = $("grant-form");
const grantMember = $("grant-member");
const nudgeForm = $("nudge-form");
const nudgeMember = $("nudge-member");
const nudgeWords = $("nudge-words");
const balancePanel = $("balance-panel");
const balanceRows = $("balance-rows");
const balanceGini = $("balance-gini");
const closingPanel = $("closing-panel");
const closingRows = $("closing-rows");
const closingLink = $("closing-link");
const nudgeBox = $("nudge-box");
const nudgeText = $("nudge-text");
const nudgeDismiss = $("nudge-dismiss");
const crisisBox = $("crisis-box");
const crisisList = $("crisis-list");

const FINAL_CLOSES = new Set([4401, 4403, 4404, 4408, 4409, 4428]);
const TURN_MODES = new Set(["queue", "round"]);
const messages = new Map(); // seq -> element
let highestSeq = 0; // the highest seq held
// Every visible message up to this seq is held. Seqs after joining have no gaps
// for a member (hidden ones come as placeholders), so a hole means something missed.
let heldThrough = 0;
let you = null;
let session = null; // the open session's frame, or null
let floor = null; // the latest floor frame
let floorV = 0;
let floorBehind = null; // a tick's floor version this page had not reached
let presence = [];
let socket = null;
let attempts = 0;
let reconnectTimer = null;
let pending = null; // {client_id, text, kind}: a share sent and not yet answered
let gapTimer = null;
let lastArea = "floor"; // where an error without a ref is shown: "floor" or "facilitator"
let announcedKey = null; // the turn whose "it's your turn" was announced
let turnKey = null; // the turn the countdown is counting
let lastRemaining = null;
let retryUntil = 0;

const percent = new Intl.NumberFormat(document.documentElement.lang || undefined, {
  style: "percent",
  maximumFractionDigits: 0,
});

function setStatus(text) {
  statusLine.textContent = text;
}

function isMe(person) {
  return Boolean(person && you && person.member_id === you.member_id);
}

function nameOf(person) {
  return isMe(person) ? `${person.name} (${words.you})` : person.name;
}

function isFacilitator() {
  if (!you || !session) return false;
  if (session.facilitator) return session.facilitator.member_id === you.member_id;
  return you.role === "facilitator";
}

// Messages -------------------------------------------------------------------

function advance() {
  while (messages.has(heldThrough + 1)) heldThrough += 1;
}

function renderMessage(frame) {
  const item = document.createElement("li");
  item.className = `message message-${frame.kind}`;
  item.dataset.seq = String(frame.seq);
  const who = document.createElement("span");
  who.className = "message-author";
  if (frame.author) {
    who.textContent = frame.author.name;
    if (isMe(frame.author)) who.textContent += ` (${words.you})`;
  } else {
    who.textContent = words.room;
  }
  const parts = [who];
  if (frame.kind === "facilitation") {
    const kind = document.createElement("span");
    kind.className = "message-kind";
    kind.textContent = ` · ${words.facilitation_note}`;
    parts.push(kind);
  }
  const time = document.createElement("time");
  time.dateTime = frame.created;
  time.textContent = new Date(frame.created).toLocaleTimeString([], {
    hour: "2-digit",
    minute: "2-digit",
  });
  const text = document.createElement("p");
  text.className = "message-text";
  if (frame.hidden) {
    text.textContent = `${words.hidden} ${frame.hidden}`;
    item.classList.add("message-hidden");
  } else {
    text.textContent = frame.text;
  }
  item.append(...parts, " ", time, text);
  return item;
}

function addMessage(frame) {
  if (pending && frame.client_id === pending.client_id) {
    // Stored: the box empties, unless something new was typed meanwhile.
    if (box.value.trim() === pending.text) box.value = "";
    pending = null;
    note.textContent = "";
    stopRetry();
  }
  const existing = messages.get(frame.seq);
  const shape = frame.hidden ? `hidden:${frame.hidden}` : "shown";
  if (existing && existing.dataset.shape === shape) return; // held already: never twice
  const element = renderMessage(frame);
  element.dataset.shape = shape;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  if (existing) {
    existing.replaceWith(element); // a hidden placeholder replacing its text, say
  } else {
    // Insert in seq order; almost always at the end.
    let after = null;
    for (const [seq, node] of messages) {
      if (seq > frame.seq && (!after || seq < Number(after.dataset.seq))) after = node;
    }
    list.insertBefore(element, after);
  }
  messages.set(frame.seq, element);
  highestSeq = Math.max(highestSeq, frame.seq);
  emptyNote.hidden = messages.size > 0;
  if (atBottom) list.scrollTop = list.scrollHeight;
  advance();
  if (heldThrough < highestSeq) scheduleGapCheck();
}

function scheduleGapCheck() {
  if (gapTimer) return;
  gapTimer = setTimeout(() => {
    gapTimer = null;
    if (heldThrough < highestSeq) resume();
  }, 1000);
}

function resume() {
  send({ type: "resume", after: heldThrough });
}

// Presence and session -------------------------------------------------------

function handsUp() {
  if (!floor || !session) return [];
  if (Array.isArray(floor.hands)) return floor.hands;
  return (floor.queue || []).map((entry) => entry.member_id);
}

function renderPresence() {
  const hands = new Set(handsUp());
  presenceList.replaceChildren(
    ...presence.map((member) => {
      const item = document.createElement("li");
      const notes = [];
      // The floor's hands when a floor is known (they change together); else presence's.
      const raised = floor && session ? hands.has(member.member_id) : member.hand_raised;
      if (raised) notes.push(words.hand_up);
      if (session && session.facilitator && session.facilitator.member_id === member.member_id) {
        notes.push(words.facilitating);
      }
      item.textContent = nameOf(member) + notes.map((text) => ` · ${text}`).join("");
      return item;
    }),
  );
  fillSelect(grantMember, presence);
  fillSelect(
    nudgeMember,
    presence.filter((member) => !isMe(member)),
  );
}

function fillSelect(select, people) {
  // Only when the people change: rebuilding an open list would close it under the pointer.
  const key = people.map((person) => `${person.member_id}:${person.name}`).join("|");
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  const keep = select.value;
  select.replaceChildren(
    ...people.map((person) => new Option(nameOf(person), String(person.member_id))),
  );
  if (people.some((person) => String(person.member_id) === keep)) select.value = keep;
}

function renderSession(frame) {
  const previous = session;
  session = frame && frame.status === "open" ? frame : null;
  banner.hidden = false;
  if (session) {
    banner.textContent = `${words.session_open} ${session.facilitator ? session.facilitator.name : ""}.`;
    if (!previous || previous.id !== session.id) {
      // A new session: the closing summary of the last one goes, the floor starts again.
      closingPanel.hidden = true;
      balancePanel.hidden = true;
    }
  } else {
    banner.textContent = words.no_session;
    floor = null;
    floorV = 0;
    floorBehind = null;
  }
  const canOpen = you && (you.role === "moderator" || you.role === "facilitator");
  openButton.hidden = Boolean(session) || !canOpen;
  closeButton.hidden = !session || !(isFacilitator() || (you && you.role === "moderator"));
  renderFacilitator();
  renderFloor();
  renderPresence();
}

// The floor ------------------------------------------------------------------

function show(element, text) {
  element.hidden = text == null || text === "";
  if (!element.hidden) element.textContent = text;
}

function announce(text) {
  floorEls.announce.textContent = "";
  setTimeout(() => {
    floorEls.announce.textContent = text;
  }, 100);
}

function setDisabled(button, disabled) {
  // aria-disabled keeps the button focusable, so focus isn't lost when it changes.
  button.setAttribute("aria-disabled", disabled ? "true" : "false");
}

function isDisabled(button) {
  return button.getAttribute("aria-disabled") === "true";
}

function renderFloor() {
  const f = session ? floor : null;
  if (!f) {
    floorEls.mode.textContent = words.floor_closed;
    for (const element of [floorEls.paused, floorEls.time, floorEls.left, floorEls.place]) {
      element.hidden = true;
    }
    floorEls.speaker.textContent = "";
    floorEls.queueBox.hidden = true;
    floorEls.roundBox.hidden = true;
    handButton.textContent = words.hand_raise;
    setDisabled(handButton, true);
    setDisabled(passButton, true);
    announcedKey = null;
    updateCountdown();
    return;
  }
  const round = f.mode === "round" && f.round ? f.round : null;
  floorEls.mode.textContent = `${words.mode_label} ${words[`mode_${f.mode}`] || f.mode}`;

  if (f.paused) {
    const until = f.paused_until
      ? new Date(f.paused_until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : null;
    show(floorEls.paused, until ? fill("paused_until", until) : words.paused);
  } else {
    show(floorEls.paused, null);
  }

  const mine = isMe(f.speaker);
  if (f.speaker) {
    if (round) floorEls.speaker.textContent = mine ? words.holder_you : fill("holder", f.speaker.name);
    else floorEls.speaker.textContent = mine ? words.speaker_you : fill("speaker", f.speaker.name);
  } else {
    floorEls.speaker.textContent = f.mode === "open" ? words.anyone : words.no_speaker;
  }
  floorEls.speaker.classList.toggle("is-you", mine);
  show(
    floorEls.left,
    f.speaker && f.turn_messages_left != null ? fill("messages_left", f.turn_messages_left) : null,
  );

  // The queue: every waiting hand with its reason, and the viewer's place in it.
  const queue = f.queue || [];
  floorEls.queueBox.hidden = !(f.mode === "queue" || queue.length > 0);
  floorEls.queueEmpty.hidden = queue.length > 0;
  floorEls.queue.replaceChildren(
    ...queue.map((entry) => {
      const item = document.createElement("li");
      const who = document.createElement("span");
      who.className = "queue-name";
      who.textContent = nameOf(entry);
      const reason = document.createElement("span");
      reason.className = "queue-reason";
      reason.textContent = entry.reason;
      item.append(who, ": ", reason);
      if (isMe(entry)) item.classList.add("is-you");
      return item;
    }),
  );
  const place = queue.findIndex((entry) => isMe(entry));
  show(
    floorEls.place,
    f.mode === "queue" && place >= 0
      ? place === 0
        ? words.line_next
        : fill("line_n", place + 1)
      : null,
  );

  // The round: the order, who holds the piece, who has passed.
  floorEls.roundBox.hidden = !round;
  if (round) {
    const second = round.phase === "second";
    const passed = round.passed || [];
    const holder = f.speaker ? f.speaker.member_id : null;
    floorEls.roundPhase.hidden = !second;
    floorEls.roundOrder.replaceChildren(
      ...round.order.map((person, index) => {
        let state;
        if (person.member_id === holder) state = words.round_holder;
        else if (second && passed.slice(round.position + 1).includes(person.member_id)) {
          state = `${words.round_passed}, ${words.round_again}`;
        } else if (passed.includes(person.member_id)) state = words.round_passed;
        else if (second || index < round.position) state = words.round_done;
        else state = words.round_waiting;
        const item = document.createElement("li");
        item.textContent = `${nameOf(person)}: ${state}`;
        if (person.member_id === holder) {
          item.classList.add("is-holder");
          item.setAttribute("aria-current", "true");
        }
        return item;
      }),
    );
    const names = passed.map((id) => {
      const person = round.order.find((p) => p.member_id === id);
      return person ? nameOf(person) : String(id);
    });
    floorEls.roundPassed.textContent = names.length
      ? fill("passed_list", names.join(", "))
      : words.passed_none;
  }

  // The viewer's own buttons.
  const raised = you ? handsUp().includes(you.member_id) : false;
  handButton.textContent = raised ? words.hand_lower : words.hand_raise;
  handButton.dataset.raised = raised ? "true" : "false";
  setDisabled(handButton, false);
  setDisabled(passButton, !(mine && TURN_MODES.has(f.mode)));

  // "It's your turn", once, when the floor comes to the viewer.
  if (mine) {
    const key = `${f.mode}|${round ? `${round.phase}:${round.position}` : ""}|${f.speaker.member_id}`;
    if (key !== announcedKey) {
      announcedKey = key;
      announce(round ? words.piece_with_you : words.your_turn);
    }
  } else {
    announcedKey = null;
  }

  if (isFacilitator()) {
    if (f.mode !== modeSelect.dataset.mode) {
      modeSelect.dataset.mode = f.mode;
      modeSelect.value = f.mode;
    }
    pauseToggle.textContent = f.paused ? words.resume : words.pause;
  }
  updateCountdown();
}

function clock(seconds) {
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${String(seconds % 60).padStart(2, "0")}`;
}

// Display only: the server decides when a turn ends.
function updateCountdown() {
  const f = session ? floor : null;
  if (!f || !f.speaker) {
    floorEls.time.hidden = true;
    turnKey = null;
    return;
  }
  if (f.turn_ends_at) {
    const left = Math.max(0, Math.ceil((Date.parse(f.turn_ends_at) - Date.now()) / 1000));
    show(floorEls.time, fill("time_left", clock(left)));
    const key = `${f.speaker.member_id}|${f.turn_ends_at}`;
    // Announced once, as the clock passes 30 seconds; never every second.
    if (key === turnKey && lastRemaining > 30 && left <= 30 && left > 0) announce(words.time_30);
    turnKey = key;
    lastRemaining = left;
  } else if (f.paused) {
    show(floorEls.time, words.time_stopped);
  } else {
    floorEls.time.hidden = true;
  }
}

function onFloor(frame, fromHello) {
  // Versions only grow within a session; an older frame is a late one.
  if (!fromHello && typeof frame.v === "number" && frame.v < floorV) return;
  floor = frame;
  floorV = typeof frame.v === "number" ? frame.v : floorV;
  renderFloor();
  renderPresence();
}

// Facilitating and the balance -----------------------------------------------

function renderFacilitator() {
  const facilitating = isFacilitator();
  facilitatorPanel.hidden = !facilitating;
  facilitationChoice.hidden = !facilitating;
  if (!facilitating) facilitationBox.checked = false;
}

function balanceRow(member, withFlag) {
  const row = document.createElement("tr");
  const name = document.createElement("th");
  name.scope = "row";
  name.textContent = nameOf(member);
  if (withFlag && member.flagged) {
    // Words, not colour alone; only ever shown to the facilitator.
    const flag = document.createElement("span");
    flag.className = "balance-flag";
    flag.textContent = words.flagged;
    name.append(flag);
    row.classList.add("is-flagged");
  }
  const count = document.createElement("td");
  count.textContent = String(member.messages);
  const part = document.createElement("td");
  part.textContent = percent.format(member.share || 0);
  row.append(name, count, part);
  return row;
}

function renderLiveBalance(frame) {
  balancePanel.hidden = false;
  balanceRows.replaceChildren(...frame.members.map((member) => balanceRow(member, true)));
  balanceGini.textContent = fill("gini", Number(frame.gini || 0).toFixed(2));
}

// The whole circle sees the balance once, when the session closes (never the flags).
function showClosing(frame, sessionId) {
  closingRows.replaceChildren(...frame.members.map((member) => balanceRow(member, false)));
  if (sessionId != null) {
    closingLink.href = `/circles/${encodeURIComponent(circleSlug)}/sessions/${sessionId}/`;
    closingLink.hidden = false;
  } else {
    closingLink.hidden = true;
  }
  closingPanel.hidden = false;
  balancePanel.hidden = true;
}

function onBalance(frame) {
  if (frame.final) {
    // The whole circle's closing balance (no flags: no one is singled out in public).
    showClosing(frame, frame.session);
    return;
  }
  // Live, for the facilitator only, after every floor change.
  renderLiveBalance(frame);
}

// Notes, errors and waits ----------------------------------------------------

function startRetry(seconds) {
  if (!seconds) {
    stopRetry();
    return;
  }
  retryUntil = Date.now() + seconds * 1000;
  updateRetry();
}

function stopRetry() {
  retryUntil = 0;
  waitLine.hidden = true;
  waitLine.textContent = "";
}

function updateRetry() {
  if (!retryUntil) return;
  const left = Math.ceil((retryUntil - Date.now()) / 1000);
  waitLine.hidden = false;
  if (left > 0) {
    waitLine.textContent = fill("retry", left);
  } else {
    waitLine.textContent = words.retry_now;
    retryUntil = 0;
  }
}

function noteFor(area) {
  return area === "facilitator" ? facilitatorNote : floorNote;
}

function onError(frame) {
  if (frame.ref && (!pending || frame.ref === pending.client_id)) {
    // A refused share: the draft stays in the box, with the reason and the wait.
    if (pending) pending = null;
    note.textContent = frame.detail;
    startRetry(frame.retry_after);
    return;
  }
  let text = frame.detail;
  if (frame.retry_after) text += ` ${fill("retry", Math.ceil(frame.retry_after))}`;
  noteFor(lastArea).textContent = text;
}

function showNudge(frame) {
  nudgeText.textContent = `${words.nudge_prefix} ${frame.text}`;
  nudgeBox.classList.add("showing");
  nudgeDismiss.hidden = false;
}

function showCrisis(frame) {
  crisisList.replaceChildren(
    ...(frame.resources || []).map((resource) => {
      const item = document.createElement("li");
      const name = document.createElement("strong");
      name.textContent = resource.name;
      item.append(name);
      if (resource.contact) item.append(`: ${resource.contact}`);
      if (resource.url && /^https?:\/\//i.test(resource.url)) {
        const link = document.createElement("a");
        link.href = resource.url;
        link.rel = "noreferrer";
        link.textContent = resource.url;
        item.append(" ", link);
      }
      return item;
    }),
  );
  crisisBox.hidden = false;
}

// The socket -----------------------------------------------------------------

function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(frame));
    return true;
  }
  return false;
}

// A control's frame; its errors are shown next to that control.
function act(frame, area) {
  lastArea = area;
  noteFor(area).textContent = "";
  if (!send(frame)) noteFor(area).textContent = words.reconnecting;
}

function sendPending() {
  const frame = { type: "say", text: pending.text, client_id: pending.client_id };
  if (pending.kind) frame.kind = pending.kind;
  return send(frame);
}

function onFrame(frame) {
  switch (frame.type) {
    case "hello":
      you = frame.you;
      attempts = 0;
      setStatus(words.connected);
      presence = frame.presence.members;
      floor = frame.floor;
      floorV = frame.floor && typeof frame.floor.v === "number" ? frame.floor.v : 0;
      floorBehind = null;
      renderSession(frame.session);
      floor = frame.floor; // renderSession forgets the floor when no session is open
      renderFloor();
      if (messages.size === 0) heldThrough = frame.seq; // a fresh page needs no older
      frame.history.forEach(addMessage);
      // Fill anything missed while away, then resend an unanswered share.
      if (heldThrough < frame.seq) resume();
      if (pending) sendPending();
      break;
    case "message":
      addMessage(frame);
      break;
    case "presence":
      presence = frame.members;
      renderPresence();
      break;
    case "session":
      renderSession(frame);
      break;
    case "floor":
      onFloor(frame, false);
      break;
    case "balance":
      onBalance(frame);
      break;
    case "hidden": {
      // A message hidden by a facilitator keeps its place, without its words.
      const element = messages.get(frame.seq);
      const text = element && element.querySelector(".message-text");
      if (text) {
        text.textContent = `${words.hidden} ${frame.reason || ""}`.trim();
        element.classList.add("message-hidden");
        element.dataset.shape = `hidden:${frame.reason || ""}`;
      }
      break;
    }
    case "nudge":
      showNudge(frame);
      break;
    case "crisis_resources":
      showCrisis(frame);
      break;
    case "tick":
      if (frame.seq > heldThrough) resume();
      // Floor frames are whole: a missed one is put right by the next. If the floor
      // stays behind a tick's version until the next tick, ask for a fresh hello.
      if (typeof frame.v === "number" && frame.v > floorV) {
        if (floorBehind !== null && floorV < floorBehind) {
          floorBehind = null;
          attempts = 0;
          socket.close();
        } else {
          floorBehind = frame.v;
        }
      } else {
        floorBehind = null;
      }
      break;
    case "resumed":
      if (frame.more) resume();
      else heldThrough = Math.max(heldThrough, highestSeq);
      break;
    case "error":
      onError(frame);
      break;
    default:
      break; // frames this page doesn't show
  }
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  if (socket && socket.readyState !== WebSocket.CLOSED) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/circles/${circleId}/`);
  socket = ws;
  ws.addEventListener("message", (event) => {
    if (ws !== socket) return;
    try {
      onFrame(JSON.parse(event.data));
    } catch (error) {
      console.error("room frame not understood", error);
    }
  });
  ws.addEventListener("close", (event) => {
    if (ws !== socket) return;
    if (FINAL_CLOSES.has(event.code)) {
      setStatus(words[String(event.code)]);
      sendButton.disabled = true;
      if (event.code === 4428) {
        location.assign(`${root.dataset.guidelinesUrl}?next=${encodeURIComponent(location.pathname)}`);
      }
      return;
    }
    if (!navigator.onLine) {
      setStatus(words.offline); // the "online" event reconnects
      return;
    }
    setStatus(words.reconnecting);
    // Back off: 1, 2, 4, 8 … up to 15 seconds, with a little jitter.
    const delay = Math.min(15000, 1000 * 2 ** attempts) + Math.random() * 500;
    attempts += 1;
    reconnectTimer = setTimeout(connect, delay);
  });
}

// Controls -------------------------------------------------------------------

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = box.value.trim();
  if (!text || pending) return;
  pending = { client_id: crypto.randomUUID(), text };
  if (facilitationBox.checked && isFacilitator()) pending.kind = "facilitation";
  note.textContent = words.sending;
  stopRetry();
  if (!sendPending()) {
    note.textContent = words.reconnecting; // resent on reconnect
  }
});

box.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    composer.requestSubmit();
  }
});

handButton.addEventListener("click", () => {
  if (isDisabled(handButton)) return;
  act({ type: "hand", raised: handButton.dataset.raised !== "true" }, "floor");
});

passButton.addEventListener("click", () => {
  if (isDisabled(passButton)) return;
  act({ type: "pass" }, "floor");
});

modeForm.addEventListener("submit", (event) => {
  event.preventDefault();
  act({ type: "mode", mode: modeSelect.value }, "facilitator");
});

nextButton.addEventListener("click", () => act({ type: "next" }, "facilitator"));

pauseForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const paused = !(floor && floor.paused);
  const frame = { type: "pause", paused };
  const minutes = Number.parseInt(pauseMinutes.value, 10);
  if (paused && minutes > 0) frame.minutes = minutes;
  act(frame, "facilitator");
  pauseMinutes.value = "";
});

grantForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!grantMember.value) return;
  act({ type: "grant", member: Number(grantMember.value) }, "facilitator");
});

nudgeForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!nudgeMember.value) return;
  const frame = { type: "nudge", member: Number(nudgeMember.value) };
  const text = nudgeWords.value.trim();
  if (text) frame.text = text;
  act(frame, "facilitator");
  if (socket && socket.readyState === WebSocket.OPEN) {
    facilitatorNote.textContent = words.nudge_sent; // an error, if any, replaces it
    nudgeWords.value = "";
  }
});

nudgeDismiss.addEventListener("click", () => {
  nudgeText.textContent = "";
  nudgeBox.classList.remove("showing");
  nudgeDismiss.hidden = true;
  box.focus();
});

openButton.addEventListener("click", () => act({ type: "open_session" }, "floor"));
closeButton.addEventListener("click", () => act({ type: "close_session" }, "floor"));

window.addEventListener("offline", () => {
  // A socket can outlive the network for a long time; drop it now and come back
  // with a fresh hello (and a resume) when the browser is online again.
  setStatus(words.offline);
  clearTimeout(reconnectTimer);
  if (socket && socket.readyState !== WebSocket.CLOSED) socket.close();
});
window.addEventListener("online", () => {
  attempts = 0;
  if (!socket || socket.readyState === WebSocket.CLOSED) connect();
  else if (socket.readyState === WebSocket.CLOSING) setStatus(words.reconnecting);
});

setInterval(() => {
  updateCountdown();
  updateRetry();
}, 1000);

renderFloor();
connect();
