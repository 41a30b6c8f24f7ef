/* jobmanager/dashboard_assets.h - the dashboard's page, script and style sheet, compiled in (src/CMakeLists.txt
 * generates them from src/jobmanager/dashboard/). NUL-terminated; static for the process's life. */
#ifndef SAGE_JOBMANAGER_DASHBOARD_ASSETS_H
#define SAGE_JOBMANAGER_DASHBOARD_ASSETS_H

extern const char *const sage__dash_html;
extern const char *const sage__dash_js;
extern const char *const sage__dash_css;

#endif
