// The console's client for the Hustack REST API. The admin key is read from
// sessionStorage on every call and sent as a Bearer header, never in a URL.

const storageKey = "hustack.console.key";

export function savedKey() {
  return sessionStorage.getItem(storageKey) || "";
}

export function saveKey(key) {
  sessionStorage.setItem(storageKey, key);
}

export function forgetKey() {
  sessionStorage.removeItem(storageKey);
}

// APIError carries the API's {"error", "message"} body and the HTTP status.
export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// request calls the API and returns the decoded JSON body, or throws an
// APIError with the API's own message.
export async function request(method, path, body, key = savedKey()) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = "Bearer " + key;
  const init = { method, headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new APIError(0, "network_error", "The server could not be reached: " + err.message);
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const code = (data && data.error) || "http_" + res.status;
    const message = (data && data.message) || `The server answered ${res.status} ${res.statusText}.`;
    throw new APIError(res.status, code, message);
  }
  return data;
}

export const api = {
  me: (key) => request("GET", "/api/v1/me", undefined, key),
  listKeys: () => request("GET", "/api/v1/keys"),
  getKey: (id) => request("GET", "/api/v1/keys/" + encodeURIComponent(id)),
  createKey: (input) => request("POST", "/api/v1/keys", input),
  revokeKey: (id) => request("POST", "/api/v1/keys/" + encodeURIComponent(id) + "/revoke", {}),
  rotateKey: (id, expireOldIn) =>
    request("POST", "/api/v1/keys/" + encodeURIComponent(id) + "/rotate", { expire_old_in: expireOldIn }),
  usageByDay: (keyID, from) =>
    request("GET", "/api/v1/usage?" + new URLSearchParams({ group_by: "day", key_id: keyID, from })),
  usageLogs: (keyID, limit) =>
    request("GET", "/api/v1/usage/logs?" + new URLSearchParams({ key_id: keyID, limit: String(limit) })),
};
