//! The admin's two interface languages: English and Arabic (right-to-left). Chosen by the
//! `cityos-admin-lang` cookie (the switch), else `Accept-Language`, else English.

use axum::http::{header, HeaderMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ar,
}

pub const LANG_COOKIE: &str = "cityos-admin-lang";

impl Lang {
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        if let Some(v) = crate::http::extract::cookie(headers, LANG_COOKIE) {
            return Lang::parse(&v).unwrap_or(Lang::En);
        }
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // The first supported language in the header's order (q-values are rarely out of order).
        for part in accept.split(',') {
            let tag = part.split(';').next().unwrap_or("").trim();
            if let Some(l) = Lang::parse(tag.split('-').next().unwrap_or("")) {
                return l;
            }
        }
        Lang::En
    }
    pub fn parse(s: &str) -> Option<Lang> {
        match s.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "ar" => Some(Lang::Ar),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ar => "ar",
        }
    }
    pub fn dir(self) -> &'static str {
        match self {
            Lang::En => "ltr",
            Lang::Ar => "rtl",
        }
    }
    /// The other language (the switch's target).
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Ar,
            Lang::Ar => Lang::En,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Ar => "العربية",
        }
    }
    /// A message of the interface; unknown keys show themselves (a test checks none are).
    pub fn t(self, key: &str) -> &'static str {
        match DICT.iter().find(|(k, _, _)| *k == key) {
            Some((_, en, ar)) => match self {
                Lang::En => en,
                Lang::Ar => ar,
            },
            None => "?",
        }
    }
    /// A number with the locale's digits (Arabic-Indic in Arabic).
    pub fn number(self, n: i64) -> String {
        self.digits(&n.to_string())
    }
    /// Text (a number, a date) with the locale's digits.
    pub fn digits(self, s: &str) -> String {
        let s = s.to_string();
        match self {
            Lang::En => s,
            Lang::Ar => s
                .chars()
                .map(|c| match c.to_digit(10) {
                    Some(d) => char::from_u32(0x0660 + d).unwrap_or(c),
                    None => c,
                })
                .collect(),
        }
    }
}

/// key, English, Arabic.
const DICT: &[(&str, &str, &str)] = &[
    ("admin", "CityOS Admin", "إدارة CityOS"),
    ("sign_in", "Sign in", "تسجيل الدخول"),
    ("sign_out", "Sign out", "تسجيل الخروج"),
    (
        "sign_in_keycloak",
        "Sign in with Keycloak",
        "تسجيل الدخول عبر Keycloak",
    ),
    ("email", "Email", "البريد الإلكتروني"),
    ("password", "Password", "كلمة المرور"),
    ("dashboard", "Dashboard", "لوحة المعلومات"),
    ("tenant", "Tenant", "المستأجر"),
    ("all_tenants", "All tenants", "كل المستأجرين"),
    ("switch", "Switch", "تبديل"),
    ("language", "Language", "اللغة"),
    ("create_new", "Create new", "إنشاء جديد"),
    // Before a collection's singular name ("Create new Page", "إنشاء صفحة").
    ("create_doc", "Create new", "إنشاء"),
    ("search", "Search", "بحث"),
    ("filter", "Filter", "تصفية"),
    ("apply", "Apply", "تطبيق"),
    ("save", "Save", "حفظ"),
    ("delete", "Delete", "حذف"),
    ("delete_selected", "Delete selected", "حذف المحدد"),
    ("publish_selected", "Publish selected", "نشر المحدد"),
    ("select_row", "Select", "تحديد"),
    ("no_docs", "Nothing here yet.", "لا يوجد شيء هنا بعد."),
    ("previous", "Previous", "السابق"),
    ("next", "Next", "التالي"),
    ("page", "Page", "صفحة"),
    ("of", "of", "من"),
    ("total", "Total", "المجموع"),
    ("saved", "Saved.", "تم الحفظ."),
    ("created", "Created.", "تم الإنشاء."),
    ("deleted", "Deleted.", "تم الحذف."),
    ("bulk_published", "Published", "تم النشر"),
    ("bulk_deleted", "Deleted", "تم الحذف"),
    ("bulk_not_changed", "Not changed", "لم يتغير"),
    (
        "bulk_stopped",
        "An error stopped the action; the rest were not tried.",
        "أوقف خطأ الإجراء؛ ولم تتم محاولة الباقي.",
    ),
    (
        "bulk_too_many",
        "Too many rows selected. The most at once:",
        "تم تحديد صفوف كثيرة جدًا. الحد الأقصى في المرة الواحدة:",
    ),
    ("back_to_list", "Back to the list", "العودة إلى القائمة"),
    (
        "fix_errors",
        "Please correct the highlighted fields.",
        "يرجى تصحيح الحقول المميزة.",
    ),
    ("no_access_title", "No access", "لا يوجد وصول"),
    (
        "no_access",
        "Your account has no administrative role. Ask a platform or tenant administrator for access.",
        "لا يملك حسابك أي دور إداري. اطلب الوصول من مسؤول المنصة أو المستأجر.",
    ),
    (
        "forbidden",
        "You are not allowed to perform this action.",
        "غير مسموح لك بتنفيذ هذا الإجراء.",
    ),
    ("not_found", "Not found.", "غير موجود."),
    (
        "bad_csrf",
        "The form expired. Reload the page and try again.",
        "انتهت صلاحية النموذج. أعد تحميل الصفحة وحاول مرة أخرى.",
    ),
    ("error", "Something went wrong.", "حدث خطأ ما."),
    ("key_once_title", "API key created", "تم إنشاء مفتاح API"),
    (
        "key_once",
        "Copy this key now. It is shown only once and cannot be recovered.",
        "انسخ هذا المفتاح الآن. يظهر مرة واحدة فقط ولا يمكن استعادته.",
    ),
    ("copy", "Copy", "نسخ"),
    ("copied", "Copied", "تم النسخ"),
    ("continue", "Continue", "متابعة"),
    (
        "rich_hint",
        "Paragraphs separated by a blank line.",
        "فقرات يفصل بينها سطر فارغ.",
    ),
    ("one_per_line", "One per line.", "عنصر في كل سطر."),
    ("longitude", "Longitude", "خط الطول"),
    ("latitude", "Latitude", "خط العرض"),
    (
        "secret_set",
        "A value is set. Type a new one to replace it; leave empty to keep it.",
        "تم تعيين قيمة. اكتب قيمة جديدة لاستبدالها أو اتركها فارغة للإبقاء عليها.",
    ),
    ("secret_unset", "Not set.", "غير معين."),
    (
        "password_hint",
        "Leave empty to keep the current password.",
        "اتركها فارغة للإبقاء على كلمة المرور الحالية.",
    ),
    ("no_rows", "No rows.", "لا توجد صفوف."),
    ("row", "Row", "صف"),
    ("block", "Block", "كتلة"),
    ("block_type", "Block type", "نوع الكتلة"),
    ("add_block", "Add block", "إضافة كتلة"),
    ("add_row", "Add row", "إضافة صف"),
    ("remove", "Remove", "إزالة"),
    ("move_up", "Move up", "تحريك لأعلى"),
    ("move_down", "Move down", "تحريك لأسفل"),
    ("replay", "Replay", "إعادة التشغيل"),
    ("retry", "Retry", "إعادة المحاولة"),
    ("cancel", "Cancel", "إلغاء"),
    (
        "action_queued",
        "Done: the job queue picks it up shortly.",
        "تم: ستتولاه قائمة المهام قريبًا.",
    ),
    (
        "action_refused",
        "Refused: this action does not apply to this document in its current state.",
        "مرفوض: لا ينطبق هذا الإجراء على هذا المستند في حالته الحالية.",
    ),
    ("recent_audit", "Recent audit events", "أحدث أحداث التدقيق"),
    ("counts", "Documents", "المستندات"),
    ("failing_jobs", "Failing sync jobs", "مهام المزامنة الفاشلة"),
    (
        "deliveries",
        "Webhook deliveries by status",
        "تسليمات الويب هوك حسب الحالة",
    ),
    (
        "invalid_login",
        "The email or password provided is incorrect.",
        "البريد الإلكتروني أو كلمة المرور غير صحيحة.",
    ),
    ("skip", "Skip to content", "تخطي إلى المحتوى"),
    ("current_tenant", "Current tenant", "المستأجر الحالي"),
    ("none", "None", "لا يوجد"),
    ("choose_tenant", "Choose a tenant", "اختر مستأجرًا"),
    ("edit", "Edit", "تعديل"),
    ("field", "Field", "الحقل"),
    ("before", "Before", "قبل"),
    ("after", "After", "بعد"),
    ("sort_by", "Sort by", "ترتيب حسب"),
    ("confirm_delete", "Delete this document?", "حذف هذا المستند؟"),
    ("g_geo", "Geo & Hierarchy", "الجغرافيا والتسلسل"),
    ("g_tenancy", "Tenancy", "المستأجرون"),
    ("g_portals", "Portals", "البوابات"),
    ("g_users", "Users & Security", "المستخدمون والأمان"),
    ("g_content", "Content", "المحتوى"),
    ("g_control", "Control Plane", "لوحة التحكم"),
    ("g_audit", "Audit", "التدقيق"),
    ("signed_in_as", "Signed in as", "تم تسجيل الدخول باسم"),
    ("file", "File", "الملف"),
    ("replace_file", "Replace the file", "استبدال الملف"),
    ("current_file", "Current file", "الملف الحالي"),
    ("upload_new", "Or upload a new file", "أو ارفع ملفًا جديدًا"),
    ("upload_alt", "Alt text for the new file", "النص البديل للملف الجديد"),
    ("file_hint", "Images, videos or PDF, up to", "صور أو فيديو أو PDF، حتى"),
    ("mb", "MB", "ميغابايت"),
    ("no_file", "Choose a file to upload.", "اختر ملفًا لرفعه."),
    (
        "file_too_large",
        "This file is larger than the upload limit. Please choose a smaller one.",
        "هذا الملف أكبر من حد الرفع. يُرجى اختيار ملف أصغر.",
    ),
    (
        "kc_not_configured",
        "Keycloak sign-in is not configured.",
        "لم يتم إعداد تسجيل الدخول عبر Keycloak.",
    ),
    (
        "kc_unreachable",
        "Keycloak is not reachable. Please try again later.",
        "تعذّر الوصول إلى Keycloak. يُرجى المحاولة لاحقًا.",
    ),
    (
        "kc_refused",
        "Keycloak did not approve the sign-in.",
        "لم يوافق Keycloak على تسجيل الدخول.",
    ),
    (
        "kc_incomplete",
        "The sign-in response from Keycloak is incomplete.",
        "استجابة تسجيل الدخول من Keycloak غير مكتملة.",
    ),
    (
        "kc_state",
        "This sign-in could not be verified: it expired or was not started from this browser. You are not signed in; please try again.",
        "تعذّر التحقق من تسجيل الدخول هذا: انتهت صلاحيته أو لم يبدأ من هذا المتصفح. لم يتم تسجيل دخولك؛ يُرجى المحاولة مرة أخرى.",
    ),
    (
        "kc_no_token",
        "Keycloak did not issue the expected tokens. You are not signed in.",
        "لم يُصدر Keycloak الرموز المتوقعة. لم يتم تسجيل دخولك.",
    ),
    (
        "kc_rejected",
        "The tokens from Keycloak were not accepted. You are not signed in.",
        "لم تُقبل الرموز الواردة من Keycloak. لم يتم تسجيل دخولك.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_wins_over_accept_language() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_LANGUAGE,
            "ar-SA,ar;q=0.9,en;q=0.5".parse().unwrap(),
        );
        assert_eq!(Lang::from_headers(&h), Lang::Ar);
        h.insert(header::COOKIE, "cityos-admin-lang=en".parse().unwrap());
        assert_eq!(Lang::from_headers(&h), Lang::En);
    }

    #[test]
    fn every_key_has_both_languages() {
        for (k, en, ar) in DICT {
            assert!(!en.is_empty() && !ar.is_empty(), "{k}");
        }
        assert_eq!(Lang::Ar.number(2026), "٢٠٢٦");
    }
}
