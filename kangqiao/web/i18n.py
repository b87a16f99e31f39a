"""Interface language: Simplified Chinese first, English on request."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

MESSAGES: dict[str, dict[str, str]] = {
    "title": {"zh-CN": "康桥 · 县域医共体健康信息平台",
              "en": "Kangqiao · County Medical Community Health Platform"},
    "tagline": {"zh-CN": "一人一份共享健康档案，连接县医院、乡镇卫生院、"
                         "村卫生室、疾控与卫健委。",
                "en": "One shared record per resident, connecting the county hospital, "
                      "township health centres, village clinics, the CDC and the "
                      "health commission."},
    "fhir_api": {"zh-CN": "FHIR R4 接口", "en": "FHIR R4 API"},
    "capability": {"zh-CN": "能力声明（CapabilityStatement）",
                   "en": "Capability statement"},
    "api_docs": {"zh-CN": "接口文档（OpenAPI）", "en": "API documentation (OpenAPI)"},
    "switch": {"zh-CN": "English", "en": "简体中文"},
    "open_workbench": {"zh-CN": "进入家庭医生工作台（需登录）",
                       "en": "Open the family doctor's workbench (sign-in required)"},
    "version": {"zh-CN": "版本", "en": "Version"},
    # ---- the workbench (kangqiao/web/workbench.py) ----
    "wb_brand": {"zh-CN": "康桥 · 家庭医生工作台", "en": "Kangqiao · Family doctor's workbench"},
    "wb_logout": {"zh-CN": "退出", "en": "Sign out"},
    "wb_error": {"zh-CN": "无法完成", "en": "Cannot continue"},
    "wb_not_found": {"zh-CN": "未找到该患者，或您无权查看。",
                     "en": "No such patient, or not in your view."},
    "wb_csrf_failed": {"zh-CN": "页面已过期，请返回重试。",
                       "en": "The page expired; go back and try again."},
    "wb_back_today": {"zh-CN": "返回今日工作", "en": "Back to today"},
    "wb_back_patient": {"zh-CN": "返回患者", "en": "Back to the patient"},
    "wb_today": {"zh-CN": "今日工作", "en": "Today"},
    "wb_managed": {"zh-CN": "管理患者数", "en": "Patients managed"},
    "wb_search": {"zh-CN": "查找患者", "en": "Find patient"},
    "wb_search_results": {"zh-CN": "查找结果", "en": "Search results"},
    "wb_search_hint": {"zh-CN": "姓名或身份证号", "en": "Name or ID number"},
    "wb_no_match": {"zh-CN": "无匹配患者", "en": "No matching patient"},
    "wb_name": {"zh-CN": "姓名", "en": "Name"},
    "wb_id_number": {"zh-CN": "身份证号", "en": "ID number"},
    "wb_birth": {"zh-CN": "出生日期", "en": "Date of birth"},
    "wb_gender": {"zh-CN": "性别", "en": "Sex"},
    "wb_years": {"zh-CN": "岁", "en": "years"},
    "wb_actions": {"zh-CN": "操作", "en": "Actions"},
    "wb_disease": {"zh-CN": "病种", "en": "Disease"},
    "wb_due": {"zh-CN": "应随访日期", "en": "Due"},
    "wb_days_overdue": {"zh-CN": "逾期天数", "en": "Days overdue"},
    "wb_last_visit": {"zh-CN": "上次随访", "en": "Last visit"},
    "wb_why": {"zh-CN": "原因", "en": "Why"},
    "wb_show_all": {"zh-CN": "查看全部", "en": "Show all"},
    "wb_shown": {"zh-CN": "已显示", "en": "shown:"},
    "wb_none": {"zh-CN": "无", "en": "None"},
    "wb_identity": {"zh-CN": "基本信息", "en": "Identity"},
    "wb_protocol": {"zh-CN": "管理状态", "en": "Protocol state"},
    "wb_next_visit": {"zh-CN": "下次随访日期", "en": "Next visit"},
    "wb_not_enrolled": {"zh-CN": "未纳入慢病管理", "en": "Not enrolled in management"},
    "wb_bp_trend": {"zh-CN": "血压趋势", "en": "Blood pressure trend"},
    "wb_glucose_trend": {"zh-CN": "血糖趋势", "en": "Glucose trend"},
    "wb_cds": {"zh-CN": "决策支持", "en": "Decision support"},
    "wb_source": {"zh-CN": "依据", "en": "Source"},
    "wb_problems": {"zh-CN": "问题列表（诊断）", "en": "Problems"},
    "wb_medications": {"zh-CN": "用药", "en": "Medications"},
    "wb_shared": {"zh-CN": "其他机构的检查结果", "en": "Results from other institutions"},
    "wb_date": {"zh-CN": "日期", "en": "Date"},
    "wb_test": {"zh-CN": "项目", "en": "Test"},
    "wb_result": {"zh-CN": "结果", "en": "Result"},
    "wb_performer": {"zh-CN": "检查机构", "en": "Performed by"},
    "wb_timeline": {"zh-CN": "就诊记录", "en": "Encounters"},
    "wb_type": {"zh-CN": "类型", "en": "Type"},
    "wb_where": {"zh-CN": "就诊机构", "en": "Where"},
    "wb_status": {"zh-CN": "状态", "en": "Status"},
    "wb_record_htn": {"zh-CN": "高血压随访", "en": "Hypertension follow-up"},
    "wb_record_dm": {"zh-CN": "糖尿病随访", "en": "Diabetes follow-up"},
    "wb_unit": {"zh-CN": "单位", "en": "Unit"},
    "wb_form_errors": {"zh-CN": "请更正标红的项目，本次未保存",
                       "en": "Please correct the marked fields; nothing was saved"},
    "wb_form_note": {"zh-CN": "此次随访分类、下次随访日期由系统按"
                              "《国家基本公共卫生服务规范（第三版）》自动判定。",
                     "en": "The classification and the next visit date are set by the "
                           "national standard's rules."},
    "wb_save": {"zh-CN": "保存随访", "en": "Save follow-up"},
    "wb_result_title": {"zh-CN": "随访结果", "en": "Follow-up result"},
    "wb_classification": {"zh-CN": "此次随访分类", "en": "Classification"},
    "wb_decisions": {"zh-CN": "判定与依据", "en": "Decisions and sources"},
    "wb_referral_suggested": {"zh-CN": "建议转诊", "en": "Referral suggested"},
    "wb_refer_now": {"zh-CN": "一键转诊至县医院", "en": "Refer to the county hospital"},
    "wb_referred": {"zh-CN": "已转诊", "en": "Referred"},
    "disease_htn": {"zh-CN": "高血压", "en": "Hypertension"},
    "disease_dm": {"zh-CN": "2型糖尿病", "en": "Type 2 diabetes"},
    "gender_male": {"zh-CN": "男", "en": "male"},
    "gender_female": {"zh-CN": "女", "en": "female"},
    "gender_other": {"zh-CN": "其他", "en": "other"},
    "gender_unknown": {"zh-CN": "未知", "en": "unknown"},
    "wl_overdue": {"zh-CN": "逾期未随访", "en": "Overdue"},
    "wl_due_this_week": {"zh-CN": "本周应随访", "en": "Due this week"},
    "wl_uncontrolled": {"zh-CN": "控制不满意", "en": "Uncontrolled"},
    "wl_recheck_2w": {"zh-CN": "待2周复查", "en": "Awaiting 2-week recheck"},
    "wl_referral_follow_up": {"zh-CN": "转诊后待随访", "en": "Referrals awaiting follow-up"},
    "wl_not_seen_3m": {"zh-CN": "3个月未随访", "en": "Not seen in 3 months"},
    "wl_not_seen_12m": {"zh-CN": "12个月未随访", "en": "Not seen in 12 months"},
    "wl_annual_check_due": {"zh-CN": "待年度健康检查", "en": "Annual check due"},
    "wl_awaiting_enrolment": {"zh-CN": "待纳入管理", "en": "Awaiting enrolment"},
    "role_village-doctor": {"zh-CN": "村医", "en": "village doctor"},
    "role_gp": {"zh-CN": "全科医生", "en": "GP"},
    "role_specialist": {"zh-CN": "专科医生", "en": "specialist"},
    "role_nurse": {"zh-CN": "护士", "en": "nurse"},
    "role_clinician": {"zh-CN": "医生", "en": "clinician"},
    "role_public-health": {"zh-CN": "公卫人员", "en": "public health"},
    "role_lab": {"zh-CN": "检验人员", "en": "lab"},
    "role_county-admin": {"zh-CN": "卫健委管理员", "en": "county admin"},
    "role_platform-admin": {"zh-CN": "平台管理员", "en": "platform admin"},
    "role_resident": {"zh-CN": "居民", "en": "resident"},
}

# FHIR status codes a doctor sees on the patient page (Condition.clinicalStatus,
# MedicationRequest.status, Encounter.status), in the interface's words.
STATUS: dict[str, dict[str, str]] = {
    "active": {"zh-CN": "活动", "en": "active"},
    "recurrence": {"zh-CN": "复发", "en": "recurrence"},
    "relapse": {"zh-CN": "复发", "en": "relapse"},
    "inactive": {"zh-CN": "非活动", "en": "inactive"},
    "remission": {"zh-CN": "缓解", "en": "remission"},
    "resolved": {"zh-CN": "已痊愈", "en": "resolved"},
    "on-hold": {"zh-CN": "暂停", "en": "on hold"},
    "cancelled": {"zh-CN": "已取消", "en": "cancelled"},
    "completed": {"zh-CN": "已完成", "en": "completed"},
    "entered-in-error": {"zh-CN": "录入错误", "en": "entered in error"},
    "stopped": {"zh-CN": "已停用", "en": "stopped"},
    "draft": {"zh-CN": "草稿", "en": "draft"},
    "planned": {"zh-CN": "计划中", "en": "planned"},
    "arrived": {"zh-CN": "已到达", "en": "arrived"},
    "triaged": {"zh-CN": "已分诊", "en": "triaged"},
    "in-progress": {"zh-CN": "进行中", "en": "in progress"},
    "onleave": {"zh-CN": "请假中", "en": "on leave"},
    "finished": {"zh-CN": "已完成", "en": "finished"},
    "unknown": {"zh-CN": "未知", "en": "unknown"},
}


# Where a resource type's doctors say it differently (a prescription "in use", not "active").
MEDICATION_STATUS: dict[str, dict[str, str]] = {"active": {"zh-CN": "在用", "en": "active"}}


def status_label(code: str | None, lang: str,
                 words: dict[str, dict[str, str]] | None = None) -> str:
    """A FHIR status code in the interface's language (an unknown code as it is); ``words``
    overrides the common labels for one resource type."""
    if not code:
        return ""
    return ((words or {}).get(code) or STATUS.get(code, {})).get(lang) or code


def language_of(request: Request) -> str:
    lang = request.query_params.get("lang")
    if lang in ("en", "zh-CN"):
        return lang
    accept = request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else "zh-CN"


def translator(lang: str) -> Callable[[str], str]:
    def t(key: str) -> str:
        return MESSAGES.get(key, {}).get(lang) or key

    return t
