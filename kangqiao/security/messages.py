"""Strings of the sign-in pages, Simplified Chinese first, English on request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MESSAGES: dict[str, dict[str, str]] = {
    "brand": {"zh-CN": "康桥 · 县域医共体健康信息平台",
              "en": "Kangqiao · County Medical Community Health Platform"},
    "login_title": {"zh-CN": "登录", "en": "Sign in"},
    "username": {"zh-CN": "用户名", "en": "Username"},
    "password": {"zh-CN": "密码", "en": "Password"},
    "submit_login": {"zh-CN": "登录", "en": "Sign in"},
    "login_failed": {"zh-CN": "用户名或密码错误。", "en": "Wrong username or password."},
    "login_locked": {"zh-CN": "登录失败次数过多，账户已暂时锁定，请稍后再试。",
                     "en": "Too many failed sign-ins: the account is locked for a while. "
                           "Try again later."},
    "login_rate": {"zh-CN": "尝试过于频繁，请一分钟后再试。",
                   "en": "Too many attempts; try again in a minute."},
    "csrf_failed": {"zh-CN": "页面已过期，请刷新后重试。",
                    "en": "The page has expired; reload it and try again."},
    "change_title": {"zh-CN": "修改密码", "en": "Change password"},
    "must_change": {"zh-CN": "为了账户安全，请先修改初始密码。",
                    "en": "For your account's safety, change the initial password first."},
    "old_password": {"zh-CN": "当前密码", "en": "Current password"},
    "new_password": {"zh-CN": "新密码", "en": "New password"},
    "new_password2": {"zh-CN": "再次输入新密码", "en": "New password again"},
    "submit_change": {"zh-CN": "保存新密码", "en": "Save the new password"},
    "pw_rules": {"zh-CN": "至少 {n} 位，包含大写字母、小写字母、数字、符号中的至少三类，"
                          "且不含用户名。",
                 "en": "At least {n} characters, from at least three of: upper-case, "
                       "lower-case, digits, symbols; not containing the username."},
    "pw_too_short": {"zh-CN": "密码太短。", "en": "The password is too short."},
    "pw_classes": {"zh-CN": "密码须包含大写字母、小写字母、数字、符号中的至少三类。",
                   "en": "Use at least three of: upper-case, lower-case, digits, symbols."},
    "pw_username": {"zh-CN": "密码不得包含用户名。",
                    "en": "The password must not contain the username."},
    "pw_old_wrong": {"zh-CN": "当前密码不正确。", "en": "The current password is wrong."},
    "pw_same": {"zh-CN": "新密码不能与当前密码相同。",
                "en": "The new password must differ from the current one."},
    "pw_mismatch": {"zh-CN": "两次输入的新密码不一致。",
                    "en": "The two new passwords differ."},
    "logout": {"zh-CN": "退出登录", "en": "Sign out"},
    "signed_in_as": {"zh-CN": "当前用户", "en": "Signed in as"},
    "authorize_title": {"zh-CN": "授权应用访问", "en": "Authorise an app"},
    "authorize_text": {"zh-CN": "应用“{app}”请求代表您访问以下数据：",
                       "en": "The app “{app}” asks to access, on your behalf:"},
    "approve": {"zh-CN": "同意", "en": "Allow"},
    "deny": {"zh-CN": "拒绝", "en": "Deny"},
    "unknown_client": {"zh-CN": "未注册的应用。", "en": "This app is not registered."},
    "bad_redirect": {"zh-CN": "回调地址与应用注册信息不符。",
                     "en": "The redirect URI is not registered for this app."},
    "switch": {"zh-CN": "English", "en": "简体中文"},
}


def translate(lang: str) -> Callable[..., str]:
    def t(key: str, **values: Any) -> str:
        text = MESSAGES.get(key, {}).get(lang) or key
        return text.format(**values) if values else text

    return t
