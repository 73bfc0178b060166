// The live room: speaks docs/protocol.md over one websocket.
// Messages are shown as text only (textContent), ordered by seq, never twice.

const root = document.getElementById("room");
const circleId = root.dataset.circleId;
const words = Object.fromEntries(
  [...document.getElementById("room-words").content.querySelectorAll("[data-word]")].map(
    (node) => [node.dataset.word, node.textContent],
  ),
);

const list = document.getElementById("message-list");
const emptyNote = document.getElementById("no-messages");
const statusLine = document.getElementById("room-status");
const banner = document.getElementById("session-banner");
const presenceList = document.getElementById("presence-list");
const composer = document.getElementById("composer");
const box = document.getElementById("composer-text");
const note = document.getElementById("composer-note");
const openButton = document.getElementById("open-session");
const closeButton = document.getElementById("close-session");

const FINAL_CLOSES = new Set([4401, 4403, 4404, 4408, 4409, 4428]);
const messages = new Map(); // seq -> element
let highestSeq = 0; // the highest seq held
// Every visible message up to this seq is held. Seqs after joining have no gaps
// for a member (hidden ones come as placeholders), so a hole means something missed.
let heldThrough = 0;
let you = null;
let session = null;
let socket = null;
let attempts = 0;
let pending = null; // {client_id, text}: a share sent and not yet answered
let gapTimer = null;

function setStatus(text) {
  statusLine.textContent = text;
}

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
    if (you && frame.author.member_id === you.member_id) {
      who.textContent += ` (${words.you})`;
    }
  } else {
    who.textContent = words.room;
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
  item.append(who, " ", time, text);
  return item;
}

function addMessage(frame) {
  if (pending && frame.client_id === pending.client_id) {
    pending = null;
    box.value = "";
    note.textContent = "";
  }
  const existing = messages.get(frame.seq);
  const element = renderMessage(frame);
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

function renderPresence(members) {
  presenceList.replaceChildren(
    ...members.map((member) => {
      const item = document.createElement("li");
      item.textContent = member.name;
      if (member.role === "moderator") item.title = member.role;
      return item;
    }),
  );
}

function renderSession(frame) {
  session = frame && frame.status === "open" ? frame : null;
  banner.hidden = false;
  if (session) {
    banner.textContent = `${words.session_open} ${session.facilitator ? session.facilitator.name : ""}.`;
  } else {
    banner.textContent = words.no_session;
  }
  const canOpen = you && (you.role === "moderator" || you.role === "facilitator");
  openButton.hidden = Boolean(session) || !canOpen;
  const facilitates = session && session.facilitator && you && session.facilitator.member_id === you.member_id;
  closeButton.hidden = !session || !(facilitates || (you && you.role === "moderator"));
}

function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(frame));
    return true;
  }
  return false;
}

function onFrame(frame) {
  switch (frame.type) {
    case "hello":
      you = frame.you;
      attempts = 0;
      setStatus(words.connected);
      renderSession(frame.session);
      renderPresence(frame.presence.members);
      if (messages.size === 0) heldThrough = frame.seq; // a fresh page needs no older
      frame.history.forEach(addMessage);
      // Fill anything missed while away, then resend an unanswered share.
      if (heldThrough < frame.seq) resume();
      if (pending) send({ type: "say", text: pending.text, client_id: pending.client_id });
      break;
    case "message":
      addMessage(frame);
      break;
    case "presence":
      renderPresence(frame.members);
      break;
    case "session":
      renderSession(frame);
      break;
    case "tick":
      if (frame.seq > heldThrough) resume();
      break;
    case "resumed":
      if (frame.more) resume();
      else heldThrough = Math.max(heldThrough, highestSeq);
      break;
    case "error":
      if (pending && frame.ref === pending.client_id) {
        pending = null; // the draft stays in the box
        let text = frame.detail;
        if (frame.retry_after) text += ` ${words.retry.replace("%s", Math.ceil(frame.retry_after))}`;
        note.textContent = text;
      } else {
        note.textContent = frame.detail;
      }
      break;
    default:
      break; // frames this page doesn't show yet
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/circles/${circleId}/`);
  socket.addEventListener("message", (event) => {
    try {
      onFrame(JSON.parse(event.data));
    } catch (error) {
      console.error("room frame not understood", error);
    }
  });
  socket.addEventListener("close", (event) => {
    if (FINAL_CLOSES.has(event.code)) {
      setStatus(words[String(event.code)]);
      composer.querySelector("button").disabled = true;
      if (event.code === 4428) location.assign(`${root.dataset.guidelinesUrl}?next=${encodeURIComponent(location.pathname)}`);
      return;
    }
    setStatus(navigator.onLine ? words.reconnecting : words.offline);
    // Back off: 1, 2, 4, 8 … up to 15 seconds, with a little jitter.
    const delay = Math.min(15000, 1000 * 2 ** attempts) + Math.random() * 500;
    attempts += 1;
    setTimeout(connect, delay);
  });
}

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = box.value.trim();
  if (!text || pending) return;
  pending = { client_id: crypto.randomUUID(), text };
  note.textContent = words.sending;
  if (!send({ type: "say", text, client_id: pending.client_id })) {
    note.textContent = words.reconnecting; // resent on reconnect
  }
});

box.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    composer.requestSubmit();
  }
});

openButton.addEventListener("click", () => send({ type: "open_session" }));
closeButton.addEventListener("click", () => send({ type: "close_session" }));
window.addEventListener("online", () => {
  if (!socket || socket.readyState === WebSocket.CLOSED) connect();
});

connect();
