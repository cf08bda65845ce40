// Talking to the stemscribe API: JSON calls, direct-to-storage uploads, job events.
// Every failure becomes an ApiError whose message is a sentence fit to show a person.

export class ApiError extends Error {
  constructor(message, code = "", status = 0) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

const UNREACHABLE = "The server cannot be reached. Check the connection and try again.";
const KEY_ITEM = "stemscribe-api-key";

// The API key, when the server asks for one: kept for this tab only.
let apiKey = sessionStorage.getItem(KEY_ITEM) || "";
let unauthorized = () => {};

export function setApiKey(key) {
  apiKey = key;
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

export function hasApiKey() {
  return apiKey !== "";
}

// Called with the ApiError of every 401, so the page can ask for a key.
export function onUnauthorized(handler) {
  unauthorized = handler;
}

// EventSource and WebSocket cannot send headers: the key goes as ?token= there.
export function withToken(url) {
  const parsed = new URL(url, document.baseURI);
  if (apiKey) parsed.searchParams.set("token", apiKey);
  return parsed.href;
}

// URLs relative to the page, so the app also works under a route prefix.
export function apiUrl(path) {
  return new URL(path, document.baseURI).href;
}

function fromBody(body, status) {
  const error = body && typeof body === "object" ? body.error : null;
  if (error && typeof error.message === "string" && error.message) {
    return new ApiError(error.message, error.code || "", status);
  }
  return null;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's error page, say
  }
  return fromBody(body, response.status)
    || new ApiError(`The server answered with status ${response.status}.`, "", response.status);
}

async function request(path, options = {}) {
  const headers = { ...options.headers, ...(apiKey && { Authorization: `Bearer ${apiKey}` }) };
  let response;
  try {
    response = await fetch(apiUrl(path), { ...options, headers });
  } catch {
    throw new ApiError(UNREACHABLE);
  }
  if (response.ok) return response.json();
  const error = await errorFrom(response);
  if (response.status === 401) unauthorized(error);
  throw error;
}

export function getJson(path) {
  return request(path, { headers: { Accept: "application/json" } });
}

export function postJson(path, body) {
  return request(path, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

// PUT the file to its presigned URL with XHR, the one browser API with upload progress.
// The URL is its own permission: no API key goes to storage.
export function putFile(url, file, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve();
      } else {
        reject(uploadError(xhr));
      }
    };
    xhr.onerror = () => reject(new ApiError("The upload could not reach the storage service."));
    xhr.onabort = () => reject(new ApiError("The upload was stopped."));
    xhr.send(file);
  });
}

// Local storage answers with the API's JSON error; S3 with an XML <Message>.
function uploadError(xhr) {
  let body = null;
  try {
    body = JSON.parse(xhr.responseText);
  } catch {
    // not JSON
  }
  const known = fromBody(body, xhr.status);
  if (known) return known;
  const xml = new DOMParser().parseFromString(xhr.responseText || "<x/>", "application/xml");
  const message = xml.querySelector("Message")?.textContent?.trim();
  return new ApiError(
    message ? `The storage service refused the upload: ${message}` : `The upload failed with status ${xhr.status}.`,
    "",
    xhr.status,
  );
}

// Follow a job's Server-Sent Events until its final `result` event (the job view).
export function followJob(eventsUrl, { onStatus, onProgress }) {
  return new Promise((resolve, reject) => {
    const source = new EventSource(withToken(eventsUrl));
    let failures = 0;
    const data = (event) => JSON.parse(event.data);
    source.addEventListener("status", (event) => {
      failures = 0;
      onStatus(data(event).status);
    });
    source.addEventListener("progress", (event) => {
      failures = 0;
      onProgress(data(event).progress);
    });
    source.addEventListener("result", (event) => {
      source.close();
      resolve(data(event));
    });
    // EventSource reconnects by itself (the stream restarts from the job's state);
    // give up only when it keeps failing.
    source.onerror = () => {
      failures += 1;
      if (source.readyState === EventSource.CLOSED || failures >= 5) {
        source.close();
        reject(new ApiError("Lost the connection to the job's progress. Reload to try again."));
      }
    };
  });
}

// A job's events path on this origin: the API's absolute URL may name an internal host.
export function sameOriginPath(url) {
  const parsed = new URL(url, document.baseURI);
  return parsed.pathname + parsed.search;
}
