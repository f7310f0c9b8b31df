//! Arabic names of the declarations' labels (collections and fields). The declarations keep
//! their English labels (Payload's wire and OpenAPI use them); the admin shows these in Arabic.
//! A unit test fails while any declared label has no Arabic name here.

use super::i18n::Lang;

/// A declared label in the interface's language (English as declared when untranslated).
pub fn label(lang: Lang, english: &'static str) -> &'static str {
    match lang {
        Lang::En => english,
        Lang::Ar => ARABIC
            .binary_search_by(|(en, _)| en.cmp(&english))
            .map(|i| ARABIC[i].1)
            .unwrap_or(english),
    }
}

/// The words for a row's field, a child table's column or a block type, which are declared by
/// their wire names only (`caption`, `isPrimary`, `imageGallery`).
pub fn part(lang: Lang, name: &str) -> &str {
    match PARTS.binary_search_by(|(n, _, _)| n.cmp(&name)) {
        Ok(i) => match lang {
            Lang::En => PARTS[i].1,
            Lang::Ar => PARTS[i].2,
        },
        Err(_) => name,
    }
}

/// Wire name → (English, Arabic), sorted by the wire name (a test checks the order).
const PARTS: &[(&str, &str, &str)] = &[
    ("caption", "Caption", "التعليق"),
    ("content", "Content", "المحتوى"),
    ("createdAt", "Created at", "تاريخ الإنشاء"),
    ("cta", "Call to action", "دعوة إلى إجراء"),
    ("ctaLink", "Call-to-action link", "رابط الدعوة إلى إجراء"),
    ("domain", "Domain", "النطاق"),
    ("expiresAt", "Expires at", "تاريخ الانتهاء"),
    ("heading", "Heading", "العنوان الرئيسي"),
    ("hero", "Hero", "الواجهة الرئيسية"),
    ("image", "Image", "الصورة"),
    ("imageGallery", "Image gallery", "معرض الصور"),
    ("images", "Images", "الصور"),
    ("isPrimary", "Primary", "أساسي"),
    ("joinedAt", "Joined at", "تاريخ الانضمام"),
    ("kind", "Kind", "النوع"),
    ("label", "Label", "التسمية"),
    ("link", "Link", "الرابط"),
    ("media", "Media", "الوسائط"),
    ("richText", "Rich text", "نص منسق"),
    ("roles", "Roles", "الأدوار"),
    ("source", "Source", "المصدر"),
    ("status", "Status", "الحالة"),
    ("store", "Store", "المتجر"),
    ("stores", "Stores", "المتاجر"),
    ("style", "Style", "النمط"),
    ("subdomain", "Subdomain", "النطاق الفرعي"),
    ("subtitle", "Subtitle", "العنوان الفرعي"),
    ("tenant", "Tenant", "المستأجر"),
    ("tenants", "Tenants", "المستأجرون"),
    ("text", "Text", "النص"),
    ("textBlock", "Text", "نص"),
    ("title", "Title", "العنوان"),
    ("url", "URL", "الرابط (URL)"),
    ("value", "Value", "القيمة"),
    ("verified", "Verified", "تم التحقق"),
    ("videoEmbed", "Embedded video", "فيديو مضمَّن"),
];

/// English label → Arabic, sorted by the English (a test checks the order).
const ARABIC: &[(&str, &str)] = &[
    ("API Key", "مفتاح API"),
    ("API Keys", "مفاتيح API"),
    ("Action", "الإجراء"),
    ("Actor API Key", "مفتاح API المنفِّذ"),
    ("Actor Roles", "أدوار المنفِّذ"),
    ("Actor Type", "نوع المنفِّذ"),
    ("Actor User", "المستخدم المنفِّذ"),
    ("Allowed Roles", "الأدوار المسموح بها"),
    ("Alt Text", "النص البديل"),
    ("Assigned Tenant", "المستأجر المعيَّن"),
    ("Attempts", "المحاولات"),
    ("Audit Log", "سجل التدقيق"),
    ("Audit Logs", "سجلات التدقيق"),
    ("Auth Provider", "مزوّد المصادقة"),
    ("Auth Secret", "سر المصادقة"),
    ("Auth Type", "نوع المصادقة"),
    ("Author", "الكاتب"),
    ("Base Path", "المسار الأساسي"),
    ("Base URL", "عنوان URL الأساسي"),
    ("Billing Email", "بريد الفوترة"),
    ("CMS Site ID", "معرّف موقع CMS"),
    ("Caption", "التعليق"),
    ("Categories", "الفئات"),
    ("Category", "الفئة"),
    ("Changes", "التغييرات"),
    ("Code", "الرمز"),
    ("Collection", "المجموعة"),
    ("Config", "الإعدادات"),
    ("Content", "المحتوى"),
    ("Content Blocks", "كتل المحتوى"),
    ("Context Source", "مصدر السياق"),
    ("Countries", "الدول"),
    ("Country", "الدولة"),
    ("Cover Image", "صورة الغلاف"),
    ("Created By", "أنشأه"),
    ("Custom Domains", "النطاقات المخصصة"),
    ("Customization", "التخصيص"),
    ("Description", "الوصف"),
    ("Direction", "الاتجاه"),
    ("Document", "المستند"),
    ("Duplicate Of", "مكرر من"),
    ("Editorial Status", "الحالة التحريرية"),
    ("Email", "البريد الإلكتروني"),
    ("Embedding", "التضمين"),
    ("Embedding Updated At", "تاريخ تحديث التضمين"),
    ("Enabled", "مفعّل"),
    ("Enabled Features", "الميزات المفعّلة"),
    ("Endpoint", "نقطة التكامل"),
    ("Error", "الخطأ"),
    ("Event Type", "نوع الحدث"),
    ("Events", "الأحداث"),
    ("Excerpt", "المقتطف"),
    ("Expires At", "ينتهي في"),
    ("External Event ID", "معرّف الحدث الخارجي"),
    ("External User ID", "معرّف المستخدم الخارجي"),
    ("Favicon", "أيقونة الموقع"),
    ("Features", "الميزات"),
    ("File Size", "حجم الملف"),
    ("Filename", "اسم الملف"),
    ("Finished", "انتهى في"),
    ("Focal X", "نقطة التركيز X"),
    ("Focal Y", "نقطة التركيز Y"),
    ("Global Roles", "الأدوار العامة"),
    ("Handle", "المعرّف النصي"),
    ("Headers", "الترويسات"),
    ("Health", "الحالة الصحية"),
    ("Height", "الارتفاع"),
    ("IP", "عنوان IP"),
    ("Idempotency Key", "مفتاح منع التكرار"),
    ("Integration Endpoint", "نقطة تكامل"),
    ("Integration Endpoints", "نقاط التكامل"),
    ("Job Type", "نوع المهمة"),
    ("Key Hash", "بصمة المفتاح"),
    ("Keycloak Realm ID", "معرّف نطاق Keycloak"),
    ("Last Check", "آخر فحص"),
    ("Last Error", "آخر خطأ"),
    ("Last Login", "آخر تسجيل دخول"),
    ("Last Sync", "آخر مزامنة"),
    ("Last Sync Error", "خطأ آخر مزامنة"),
    ("Last Used At", "آخر استخدام"),
    ("Layout", "التخطيط"),
    ("Lease Expires", "انتهاء الحجز"),
    ("Location", "الموقع الجغرافي"),
    ("Locked At", "وقت القفل"),
    ("Locked By", "مقفل بواسطة"),
    ("Logo", "الشعار"),
    ("Logs", "السجلات"),
    ("MIME Type", "نوع MIME"),
    ("Max Attempts", "الحد الأقصى للمحاولات"),
    ("Media", "الوسائط"),
    ("Medusa Product ID", "معرّف منتج Medusa"),
    ("Medusa Region IDs", "معرّفات مناطق Medusa"),
    ("Medusa Sales Channel ID", "معرّف قناة مبيعات Medusa"),
    ("Medusa Snapshot", "لقطة Medusa"),
    ("Medusa Store ID", "معرّف متجر Medusa"),
    ("Medusa Tenant ID", "معرّف مستأجر Medusa"),
    ("Medusa Variant IDs", "معرّفات متغيرات Medusa"),
    ("Medusa Vendor ID", "معرّف بائع Medusa"),
    ("Metadata", "البيانات الوصفية"),
    ("Name", "الاسم"),
    ("Name (Arabic)", "الاسم (بالعربية)"),
    ("Next Retry", "المحاولة التالية"),
    ("Owner", "المالك"),
    ("Owner Type", "نوع المالك"),
    ("Page", "صفحة"),
    ("Pages", "الصفحات"),
    ("Password", "كلمة المرور"),
    ("Payload", "الحمولة"),
    ("Payload Hash", "بصمة الحمولة"),
    ("Portal", "بوابة"),
    ("Portal Type", "نوع البوابة"),
    ("Portals", "البوابات"),
    ("Post", "مقالة"),
    ("Posts", "المقالات"),
    ("Preferences", "التفضيلات"),
    ("Prefix", "البادئة"),
    ("Previous Secret Expires", "انتهاء السر السابق"),
    ("Processed At", "وقت المعالجة"),
    ("Product Content", "محتوى المنتجات"),
    ("Publish At", "النشر في"),
    ("Published At", "تاريخ النشر"),
    ("Request ID", "معرّف الطلب"),
    ("Requests per Day", "الطلبات في اليوم"),
    ("Requests per Hour", "الطلبات في الساعة"),
    ("Response Body", "نص الاستجابة"),
    ("Response Code", "رمز الاستجابة"),
    ("Revoked At", "وقت الإلغاء"),
    ("Run After", "التشغيل بعد"),
    ("SEO Description", "وصف SEO"),
    ("SEO Image", "صورة SEO"),
    ("SEO Keywords", "كلمات SEO المفتاحية"),
    ("SEO Title", "عنوان SEO"),
    ("SHA-256", "SHA-256"),
    ("Scope", "النطاق"),
    ("Scope Type", "نوع النطاق"),
    ("Scopes", "النطاقات"),
    ("Secret Env Var", "متغير بيئة السر"),
    ("Sessions", "الجلسات"),
    ("Signature Valid", "التوقيع صالح"),
    ("Sizes", "المقاسات"),
    ("Slug", "المسار المختصر"),
    ("Source Collection", "المجموعة المصدر"),
    ("Source Document", "المستند المصدر"),
    ("Specifications", "المواصفات"),
    ("Started", "بدأ في"),
    ("Status", "الحالة"),
    ("Storage Key", "مفتاح التخزين"),
    ("Store", "المتجر"),
    ("Storefront Type", "نوع واجهة المتجر"),
    ("Storefront URL", "عنوان URL لواجهة المتجر"),
    ("Stores", "المتاجر"),
    ("Subcategories", "الفئات الفرعية"),
    ("Subcategory", "الفئة الفرعية"),
    ("Subdomains", "النطاقات الفرعية"),
    ("Subscription Tier", "فئة الاشتراك"),
    ("Sync Job", "مهمة مزامنة"),
    ("Sync Jobs", "مهام المزامنة"),
    ("Sync Status", "حالة المزامنة"),
    ("System", "النظام"),
    ("Tags", "الوسوم"),
    ("Target ID", "معرّف الهدف"),
    ("Target System", "النظام الهدف"),
    ("Tenant", "المستأجر"),
    ("Tenant Memberships", "عضويات المستأجرين"),
    ("Tenants", "المستأجرون"),
    ("Theme", "السمة"),
    ("Theme Config", "إعدادات السمة"),
    ("Timeout (ms)", "المهلة (مللي ثانية)"),
    ("Title", "العنوان"),
    ("Trial Ends At", "نهاية الفترة التجريبية"),
    ("URL", "عنوان URL"),
    ("Unpublish At", "إلغاء النشر في"),
    ("Updated By", "حدّثه"),
    ("Usage Count", "عدد مرات الاستخدام"),
    ("User", "المستخدم"),
    ("User Agent", "وكيل المستخدم"),
    ("Users", "المستخدمون"),
    ("Webhook Log", "سجل Webhook"),
    ("Webhook Logs", "سجلات Webhook"),
    ("Webhook Secret", "سر Webhook"),
    ("Width", "العرض"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_sorted_for_binary_search() {
        assert!(ARABIC.windows(2).all(|w| w[0].0 < w[1].0), "keep ARABIC sorted");
        assert!(PARTS.windows(2).all(|w| w[0].0 < w[1].0), "keep PARTS sorted");
    }

    /// Every row field, child column and block type the declarations name has words in both
    /// languages.
    #[test]
    fn every_declared_part_has_words() {
        use crate::collections::decl::{Kind, SubField, SubKind};
        fn subs(fields: &[SubField], out: &mut Vec<&'static str>) {
            for s in fields {
                out.push(s.name);
                if let SubKind::Rows(inner) = s.kind {
                    subs(inner, out);
                }
            }
        }
        let registry = crate::collections::Registry::new();
        let mut names = Vec::new();
        for d in registry.all() {
            for f in d.fields {
                match f.kind {
                    Kind::Rows(fields) => subs(fields, &mut names),
                    Kind::Blocks(blocks) => {
                        for b in blocks {
                            names.push(b.slug);
                            subs(b.fields, &mut names);
                        }
                    }
                    Kind::Child(child) => names.extend(child.columns.iter().map(|(w, _, _)| *w)),
                    _ => {}
                }
            }
        }
        let mut missing: Vec<&str> = names
            .into_iter()
            .filter(|n| PARTS.binary_search_by(|(p, _, _)| p.cmp(n)).is_err())
            .collect();
        missing.sort_unstable();
        missing.dedup();
        assert!(missing.is_empty(), "parts without words: {missing:?}");
        assert_eq!(part(Lang::En, "isPrimary"), "Primary");
        assert_eq!(part(Lang::Ar, "imageGallery"), "معرض الصور");
    }

    #[test]
    fn every_declared_label_has_an_arabic_name() {
        let registry = crate::collections::Registry::new();
        let mut missing = Vec::new();
        for d in registry.all() {
            let labels = [d.singular, d.plural]
                .into_iter()
                .chain(d.fields.iter().map(|f| f.label));
            for l in labels {
                if label(Lang::Ar, l) == l && l != "SHA-256" {
                    missing.push(l);
                }
            }
        }
        missing.sort_unstable();
        missing.dedup();
        assert!(missing.is_empty(), "labels without an Arabic name: {missing:?}");
        assert_eq!(label(Lang::En, "Tenant"), "Tenant");
        assert_eq!(label(Lang::Ar, "Tenant"), "المستأجر");
    }
}
